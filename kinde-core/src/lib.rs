//! Receive Kinde webhooks safely: verify, deduplicate and dispatch, framework-free.
//!
//! Kinde POSTs each event as an RS256-signed JWT. [`Webhooks`] turns a delivery into the
//! answer to send, in this order:
//!
//! 1. the token's header is read (`alg` must be RS256, `kid` required, no `crit`);
//! 2. the key for `kid` comes from the issuer's JWKS, cached ([`verify::JwksCache`]): fetched
//!    once, refetched single-flight only for an unknown `kid`, with a cooldown;
//! 3. the signature is verified with the crypto backend ([`crypto_backend`]), each key parsed
//!    once when the key set loaded; the claims are parsed once and must be a webhook (not an
//!    access or ID token of the same tenant) inside the replay window;
//! 4. the handler for the type is looked up (none and no fallback: `200 ignored`);
//! 5. the **signed** `event_id` is claimed in the [`store::IdempotencyStore`];
//! 6. a typed handler's `data` is parsed into its type (`500 unparseable_event` if it does not
//!    match), and the handler runs; the claim is completed, or released on failure so Kinde's
//!    retry runs it again.
//!
//! ```no_run
//! use kinde_core::{Webhooks, event::{Event, UserCreated, UserDeleted}};
//!
//! # async fn run(headers: http::HeaderMap, body: bytes::Bytes) -> Result<(), Box<dyn std::error::Error>> {
//! let webhooks = Webhooks::builder()
//!     .issuer("https://acme.kinde.com")
//!     .on(|e: Event<UserCreated>| async move {
//!         println!("new user {} ({:?})", e.data.user.id, e.data.user.email);
//!     })
//!     .on(async |e: Event<UserDeleted>| -> Result<(), std::io::Error> {
//!         println!("user {} deleted", e.data.user.id);
//!         Ok(())
//!     })
//!     .build()?;
//!
//! let response = webhooks.handle(&headers, &body).await;
//! println!("{} {:?}", response.status(), response.body());
//! # Ok(()) }
//! ```
//!
//! Adapters: `kinde-tower` (axum, hyper, tonic) and `kinde-actix` (actix-web), built on
//! [`adapter`]. To verify only, and do the rest yourself, see [`Webhooks::verify`].

pub mod adapter;
pub mod clock;
pub mod event;
pub mod handler;
pub mod metrics;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod verify;
mod webhooks;

pub use clock::{Clock, SystemClock};
pub use event::{Event, EventId, EventMeta, EventPayload, KindeEvent};
pub use handler::{BoxError, State};
#[cfg(feature = "durable")]
pub use store::{FileStore, FileStoreConfig};
pub use store::{IdempotencyStore, MemoryStore, MemoryStoreConfig};
#[cfg(feature = "redis")]
pub use store::{RedisStore, RedisStoreConfig};
pub use verify::{ReplayWindow, VerifyError};
pub use webhooks::{
    BuildError, EntityOrdering, Outcome, ReplayError, WebhookResponse, Webhooks, WebhooksBuilder,
    DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_PATH,
};

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
