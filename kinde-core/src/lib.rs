//! Receive Kinde webhooks safely: verify, deduplicate and dispatch, framework-free.
//!
//! Kinde POSTs each event as an RS256-signed JWT. [`Webhooks::handle`] turns the request's
//! headers and body into the response to send:
//!
//! 1. the token's header is read (`alg` must be RS256, `kid` required);
//! 2. the key for `kid` comes from the issuer's JWKS, cached ([`verify::JwksCache`]): fetched
//!    once, refetched single-flight only for an unknown `kid`, with a cooldown;
//! 3. the signature is verified with the crypto backend ([`crypto_backend`]) and the key parsed
//!    once when the key set loaded; the claims must be a webhook (not an access or ID token of
//!    the same tenant) inside the replay window;
//! 4. the payload becomes a typed [`event::EventPayload`];
//! 5. the **signed** `event_id` is claimed in the [`store::IdempotencyStore`];
//! 6. the handler registered for the type runs; the claim is completed, or released on failure
//!    so Kinde's retry runs it again.
//!
//! ```no_run
//! use kinde_core::{Webhooks, event::{Event, UserCreated, UserDeleted}};
//!
//! # async fn run(headers: http::HeaderMap, body: bytes::Bytes) -> Result<(), Box<dyn std::error::Error>> {
//! let webhooks = Webhooks::builder()
//!     .issuer("https://acme.kinde.com")
//!     .on(|e: Event<UserCreated>| async move {
//!         println!("new user {} ({:?})", e.data.user.id, e.data.user.email);
//!         Ok::<_, std::io::Error>(())
//!     })
//!     .on(|e: Event<UserDeleted>| async move {
//!         println!("user {} deleted", e.data.user.id);
//!         Ok::<_, std::io::Error>(())
//!     })
//!     .build()?;
//!
//! let response = webhooks.handle(&headers, &body).await;
//! println!("{} {:?}", response.status(), response.body());
//! # Ok(()) }
//! ```
//!
//! Adapters: `kinde-tower` (axum, hyper, tonic) and `kinde-actix` (actix-web).

pub mod clock;
pub mod dispatch;
pub mod event;
mod receiver;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod verify;

pub use clock::{Clock, SystemClock};
pub use dispatch::BoxError;
pub use event::{Event, EventMeta, EventPayload, KindeEvent, WebhookEvent};
pub use receiver::{
    ConfigError, Outcome, WebhookResponse, Webhooks, WebhooksBuilder, DEFAULT_BODY_LIMIT,
    DEFAULT_PATH, MAX_WEBHOOK_ID_LEN,
};
pub use store::{IdempotencyStore, MemoryStore, MemoryStoreConfig};
#[cfg(feature = "redis")]
pub use store::{RedisStore, RedisStoreConfig};
pub use verify::{ReplayWindow, VerifyError};

/// The crypto backend that verifies RS256 in this build: `"aws-lc-rs"` (the default, and the
/// choice when both backend features are enabled) or `"rust-crypto"`.
///
/// kinde-core calls the backend directly, not through jsonwebtoken, so the features an
/// application enables on its own jsonwebtoken change nothing here (and ours change nothing
/// there).
///
/// ```
/// assert!(["aws-lc-rs", "rust-crypto"].contains(&kinde_core::crypto_backend()));
/// ```
pub fn crypto_backend() -> &'static str {
    verify::crypto::BACKEND
}
