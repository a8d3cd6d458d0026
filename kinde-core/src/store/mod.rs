//! Idempotency stores: claim an event before handling it, complete, release or fail it after.
//!
//! Every operation is atomic and carries a fencing token, so a late completion by a receiver
//! whose claim already expired (and was taken over) changes nothing. With ordering on
//! ([`WebhooksBuilder::ordering`](crate::WebhooksBuilder::ordering)), a claim also covers the
//! event's entity (the user, organization, … it is about), so no two receivers apply one entity
//! out of order; with parking on ([`WebhooksBuilder::park_after`](crate::WebhooksBuilder::park_after)),
//! failures are counted and an event that keeps failing is set aside instead of failing forever.
//!
//! Three stores implement the protocol: [`MemoryStore`] (the default, one process),
//! `RedisStore` (feature `redis`, shared by every receiver) and `FileStore` (feature `durable`,
//! one process, survives restarts).

#[cfg(feature = "durable")]
mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;
mod types;

#[cfg(feature = "durable")]
pub use file::{FileStore, FileStoreConfig, FileStoreError};
pub use memory::{MemoryStore, MemoryStoreConfig};
#[cfg(feature = "redis")]
pub use redis_store::{FailMode, RedisConfigError, RedisStore, RedisStoreConfig};
pub use types::{
    Applied, Claim, ClaimRequest, ClaimToken, Completion, Entity, Failed, Failure, Fenced,
    ParkLimits, ParkedEvent, StoreError,
};

use std::time::Duration;

use async_trait::async_trait;

use crate::event::EventId;

/// The store used by [`crate::Webhooks`]: [`MemoryStore`] by default, `RedisStore` or
/// `FileStore`. Each operation is atomic; the receiver decides when to call which.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically claims the event (and, with [`ClaimRequest::entity`], its entity), telling
    /// which case it hit:
    ///
    /// 1. the event handled → [`Claim::AlreadyHandled`]; parked → [`Claim::Parked`] (unless
    ///    [`ClaimRequest::replay`]); claimed by another delivery whose claim has not expired →
    ///    [`Claim::InProgress`];
    /// 2. with an entity: an event of the entity applied with a later timestamp, or one in
    ///    progress with a later timestamp → the event is recorded handled (for `done_ttl`) and
    ///    [`Claim::Superseded`]; one in progress with an earlier or equal timestamp →
    ///    [`Claim::InProgress`]. Equal applied timestamps are not superseded;
    /// 3. else the claim is taken for `processing_ttl` → [`Claim::StartProcessing`], with the
    ///    entity's applied record before this event.
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError>;

    /// Marks the claimed event handled (for `done_ttl`), forgets its failures and any parked
    /// record, and with an entity records the event's timestamp as applied (the latest wins; a
    /// `*.deleted` leaves a tombstone) and clears the entity's claim. Only while the claim is
    /// still `token`'s: otherwise [`Fenced::Superseded`] and nothing changes.
    async fn complete(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        completion: &Completion<'_>,
    ) -> Result<Fenced, StoreError>;

    /// Drops the claim (and the entity's claim) after a failure that is not counted, so the
    /// next delivery runs the handler again.
    async fn release(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
    ) -> Result<Fenced, StoreError>;

    /// Counts a failed attempt and drops the claim (and the entity's claim); on the
    /// [`Failure::park_after`]-th failure the event is parked instead (its later deliveries are
    /// [`Claim::Parked`]), unless the parked set is full.
    async fn fail(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
        failure: &Failure<'_>,
    ) -> Result<Failed, StoreError>;

    /// Every parked event, oldest first.
    async fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError>;

    /// One parked event.
    async fn parked_event(&self, event_id: &EventId) -> Result<Option<ParkedEvent>, StoreError>;

    /// Forgets a parked event: its record, and its parked state (a later delivery is new);
    /// whether there was a record. `entity` as in its claims.
    async fn unpark(&self, event_id: &EventId, entity: Option<&str>) -> Result<bool, StoreError>;
}

#[async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for std::sync::Arc<S> {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        (**self).claim(request).await
    }
    async fn complete(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        completion: &Completion<'_>,
    ) -> Result<Fenced, StoreError> {
        (**self).complete(event_id, token, completion).await
    }
    async fn release(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
    ) -> Result<Fenced, StoreError> {
        (**self).release(event_id, token, entity).await
    }
    async fn fail(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
        failure: &Failure<'_>,
    ) -> Result<Failed, StoreError> {
        (**self).fail(event_id, token, entity, failure).await
    }
    async fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        (**self).parked().await
    }
    async fn parked_event(&self, event_id: &EventId) -> Result<Option<ParkedEvent>, StoreError> {
        (**self).parked_event(event_id).await
    }
    async fn unpark(&self, event_id: &EventId, entity: Option<&str>) -> Result<bool, StoreError> {
        (**self).unpark(event_id, entity).await
    }
}

/// A duration in whole milliseconds, at least 1 (stores keep deadlines in ms).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
