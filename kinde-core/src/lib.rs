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
//! Mount it with an adapter: [`kinde-tower`](https://docs.rs/kinde-tower) (axum, hyper,
//! tonic) or [`kinde-actix`](https://docs.rs/kinde-actix) (actix-web), both built on
//! [`adapter`], so every framework answers alike.
//!
//! # Configuration and answers
//!
//! - Every setting, its default and what it bounds: the table on [`WebhooksBuilder`]. An
//!   invalid combination is a [`BuildError`] from [`build`](WebhooksBuilder::build), never a
//!   surprise at the first delivery.
//! - Every answer — status, body code, headers — and when it is sent: the table on
//!   [`Outcome`], the one place statuses are chosen. A forgery is a 4xx and no handler runs;
//!   whatever cannot be checked right now (keys unreachable, the store down) is a 503 with
//!   `Retry-After`, so Kinde retries. Kinde counts only 200 as delivered.
//! - Stores: [`MemoryStore`] (the default, one process), `FileStore` (feature `durable`: one
//!   process, survives restarts) and `RedisStore` (feature `redis`: shared by every receiver);
//!   see [`store`].
//!
//! # Verify only
//!
//! To check a token and do the rest yourself (a queue, a serverless function), as svix's and
//! Stripe's libraries offer: [`Webhooks::verify`] returns the verified [`Event`] or the
//! [`VerifyError`] saying why not, and runs no store and no handler. Deduplicating on the
//! signed [`EventMeta::event_id`] is then yours. The answer for an error is
//! [`Outcome::Rejected`]'s:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use kinde_core::event::UserCreated;
//! use kinde_core::testing::{TestEvent, TestIssuer};
//! use kinde_core::{Outcome, Webhooks};
//!
//! # let issuer = TestIssuer::new();
//! # let jwks = issuer.serve().await;
//! # let body = issuer.sign(&TestEvent::sample("user.created").into_claims());
//! // In production: `.issuer("https://acme.kinde.com")`; here the test kit's local issuer.
//! let webhooks = Webhooks::builder().issuer(jwks.url()).build().unwrap();
//!
//! let status = match webhooks.verify(body.as_bytes()).await {
//!     Ok(event) => {
//!         let created: UserCreated = event.parse().unwrap();
//!         println!("queue {} for {}", event.meta.event_id, created.user.id);
//!         200
//!     }
//!     // A forgery: 400 or 401. Keys unreachable: 503, so Kinde retries.
//!     Err(e) => Outcome::Rejected(e).status().as_u16(),
//! };
//! assert_eq!(status, 200);
//!
//! let forged = issuer.forge(&TestEvent::sample("user.created").into_claims());
//! let refused = webhooks.verify(forged.as_bytes()).await.unwrap_err();
//! assert_eq!(Outcome::Rejected(refused).status(), 401);
//! # }
//! ```
//!
//! # Testing
//!
//! The `testing` module (feature `testing`) is a local issuer with real RSA keys: it signs
//! any event, serves its JWKS on a loopback port and builds the requests Kinde would send, so
//! handlers are tested end to end with no Kinde account and no network.
//!
//! # Features
//!
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_debug_implementations)]

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
    BuildError, EntityOrdering, Outcome, Redrive, RedriveReport, ReplayError, WebhookResponse,
    Webhooks, WebhooksBuilder, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PATH,
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

/// The README's examples, compiled (and run where they can) by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
