//! A tower [`Layer`](tower_layer::Layer) that receives Kinde webhooks on one path of any tower
//! service: axum, hyper, tonic.
//!
//! Requests to the configured path (exact match, default `/kinde/webhook`) are answered by
//! [`kinde_core::Webhooks`]: verified, deduplicated and dispatched. Every other request goes to
//! the inner service untouched, its body neither read nor re-boxed.
//!
//! ```
//! use axum::{routing::get, Router};
//! use kinde_core::{Webhooks, event::{Event, UserCreated}};
//! use kinde_tower::KindeWebhookLayer;
//!
//! let webhooks = Webhooks::builder()
//!     .issuer("acme.kinde.com")
//!     .on(|e: Event<UserCreated>| async move {
//!         println!("new user {}", e.data.user.id);
//!         Ok::<_, std::convert::Infallible>(())
//!     })
//!     .build()
//!     .unwrap();
//!
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(KindeWebhookLayer::new(webhooks));
//! ```
//!
//! Rejections (401, 405, 413, …) are responses, never service errors; the status of each is
//! chosen by kinde-core, so every adapter answers alike.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::KindeWebhookLayer;
pub use service::KindeWebhookService;

/// The response body: the inner service's body untouched, or kinde-core's short JSON answer.
pub type ResponseBody<B> = http_body_util::Either<B, http_body_util::Full<bytes::Bytes>>;
