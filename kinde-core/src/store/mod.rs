//! Idempotency stores: claim an `event_id` before handling it, complete or release it after.
//!
//! Every operation touches one key and carries a fencing token, so a late completion by a
//! receiver whose claim already expired (and was taken over) changes nothing.

#[cfg(feature = "durable")]
mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;

#[cfg(feature = "durable")]
pub use file::{FileStore, FileStoreConfig, FileStoreError};
pub use memory::{MemoryStore, MemoryStoreConfig};
#[cfg(feature = "redis")]
pub use redis_store::{FailMode, RedisConfigError, RedisStore, RedisStoreConfig};

use std::time::Duration;

use async_trait::async_trait;

/// Proof of a claim: only its holder can complete or release it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh random token (128 bits).
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// A token from its string form (as stored, e.g. in Redis).
    pub fn from_string(s: String) -> Self {
        Self(s)
    }

    /// The string form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the caller must do after claiming an event id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// New (or its earlier claim expired): run the handler, then complete or release.
    StartProcessing(ClaimToken),
    /// Handled before: answer 200, run nothing.
    AlreadyHandled,
    /// Another delivery is being handled right now: answer 409 so Kinde retries later.
    InProgress,
}

/// Whether a fenced operation took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fenced {
    /// The token matched: done.
    Applied,
    /// The claim was no longer ours (it expired and was re-claimed, or is gone): nothing changed.
    Superseded,
}

/// A store that cannot answer right now. Deliveries get 503 (fail closed) so Kinde retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable or failed.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A command took longer than the configured timeout.
    #[error("store timed out after {0:?}")]
    Timeout(Duration),
    /// The store is full of in-progress claims and cannot take another.
    #[error("store full: {0} entries, all in progress")]
    Full(usize),
    /// The event id is not acceptable as a key.
    #[error("invalid event id")]
    InvalidKey,
}

/// The idempotency store used by [`crate::Webhooks`]: [`MemoryStore`] by default, or Redis.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically claims `event_id` for `processing_ttl`, telling which case it hit.
    async fn claim(&self, event_id: &str, processing_ttl: Duration) -> Result<Claim, StoreError>;

    /// Marks the claimed event handled, remembered for `done_ttl`.
    async fn complete(
        &self,
        event_id: &str,
        token: &ClaimToken,
        done_ttl: Duration,
    ) -> Result<Fenced, StoreError>;

    /// Drops the claim after a failed handler, so Kinde's retry processes the event again.
    async fn release(&self, event_id: &str, token: &ClaimToken) -> Result<Fenced, StoreError>;
}

#[async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for std::sync::Arc<S> {
    async fn claim(&self, event_id: &str, processing_ttl: Duration) -> Result<Claim, StoreError> {
        (**self).claim(event_id, processing_ttl).await
    }
    async fn complete(
        &self,
        event_id: &str,
        token: &ClaimToken,
        done_ttl: Duration,
    ) -> Result<Fenced, StoreError> {
        (**self).complete(event_id, token, done_ttl).await
    }
    async fn release(&self, event_id: &str, token: &ClaimToken) -> Result<Fenced, StoreError> {
        (**self).release(event_id, token).await
    }
}
