//! An actix-web middleware that receives Kinde webhooks on one path of an app.
//!
//! Requests to the configured path (exact match, default `/kinde/webhook`) are answered by
//! [`kinde_core::Webhooks`]: verified, deduplicated and dispatched. Every other request goes to
//! the app untouched, its payload neither read nor re-boxed.
//!
//! `HttpServer::new` runs its app factory once per worker thread. Build the [`Webhooks`] once,
//! **before** the server, and clone it into each worker's app: it is an `Arc` inside, so every
//! worker shares the same idempotency store (a duplicate landing on another worker is still
//! recognised) and the same key cache (one JWKS fetch serves all workers). Building it inside
//! the factory would give each worker its own store and cache.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use kinde_actix::KindeWebhooks;
//! use kinde_core::{Webhooks, event::{Event, UserCreated}};
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // Once, before the server: every worker gets a clone of the same receiver.
//!     let webhooks = Webhooks::builder()
//!         .issuer("https://acme.kinde.com")
//!         .on(|e: Event<UserCreated>| async move {
//!             println!("new user {}", e.data.user.id);
//!             Ok::<_, std::convert::Infallible>(())
//!         })
//!         .build()
//!         .expect("valid webhook configuration");
//!     webhooks.warm_up();
//!
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(KindeWebhooks::new(webhooks.clone()))
//!             .route("/health", web::get().to(|| async { "ok" }))
//!     })
//!     .bind(("127.0.0.1", 3000))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! Only POST is accepted on the path (405 with `Allow: POST` otherwise). The payload is read
//! chunk by chunk and refused with 413 as soon as it passes [`Webhooks::body_limit`]; a declared
//! `Content-Length` over the limit is refused before anything is read. Rejections (401, 405,
//! 413, …) are responses, never service errors, and each status is chosen by kinde-core, so
//! this adapter answers exactly like `kinde-tower`.
//!
//! actix-web 4 speaks `http` 0.2 while kinde-core speaks `http` 1.x: request headers and the
//! response are converted byte for byte in one module.
//!
//! [`Webhooks`]: kinde_core::Webhooks
//! [`Webhooks::body_limit`]: kinde_core::Webhooks::body_limit

mod body;
mod convert;
mod future;
mod middleware;

pub use future::ResponseFuture;
pub use middleware::{KindeWebhooks, KindeWebhooksMiddleware};
