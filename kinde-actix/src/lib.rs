//! Receive Kinde webhooks in actix-web apps.
//!
//! Two ways to mount kinde-core's [`Webhooks`] (verify, deduplicate, dispatch):
//!
//! - [`WebhookEndpoint`] — an actix-web handler with no path of its own. **The recommended
//!   way**: the app's router decides the path, so scopes and `default_service` work as for any
//!   route: `.service(web::resource("/kinde/webhook").to(WebhookEndpoint::new(webhooks)))`.
//! - [`WebhookMiddleware`] — a `Transform` for `.wrap(..)` that intercepts [`Webhooks::path`]
//!   in front of the whole app, whatever its routes.
//!
//! `HttpServer::new` runs its app factory once per worker thread. Build the [`Webhooks`] once,
//! **before** the server, and clone it into each worker's app: it is an `Arc` inside, so every
//! worker shares the same idempotency store (a duplicate landing on another worker is still
//! recognised) and the same key cache (one JWKS fetch serves all workers). Building it inside
//! the factory would give each worker its own store and cache.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use kinde_actix::WebhookEndpoint;
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
//!             .route("/health", web::get().to(|| async { "ok" }))
//!             .service(web::resource("/kinde/webhook").to(WebhookEndpoint::new(webhooks.clone())))
//!     })
//!     .bind(("127.0.0.1", 3000))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! Only POST is accepted (405 with `Allow: POST` otherwise). Rejections (401, 405, 413, …) are
//! responses, never service errors, and each status is chosen by kinde-core, so this adapter
//! answers exactly like `kinde-tower`.
//!
//! # Configuration and answers
//!
//! Both forms take their settings from the [`Webhooks`] they wrap: every setting and its
//! default is in the table on [`WebhooksBuilder`]; every answer (status, body code, headers) is
//! in the table on [`Outcome`]. Answers are `application/json`, `{"status":"<code>"}` on 200,
//! `{"error":"<code>"}` otherwise; every 503 carries `Retry-After`, a 405 `Allow: POST`, a 408
//! `Connection: close`.
//!
//! # Bounds
//!
//! A webhook endpoint is public: anyone can open a connection and start an upload. Both forms
//! bound what such a stranger can hold, with the settings of the [`Webhooks`]:
//!
//! - the payload must arrive whole within `body_timeout` (default 10 s) **in total**, counted
//!   from the end of the request head — a 1-byte trickle is cut off too: `408 body_timeout`,
//!   and the connection is closed;
//! - at most `max_in_flight` deliveries (default 1 024, shared by every worker: build the
//!   [`Webhooks`] once) are read or handled at once; past it, `503 too_many_deliveries` with
//!   `Retry-After`, at once, never a wait;
//! - the payload is read chunk by chunk from actix-web's own payload stream and refused with
//!   413 as soon as it passes [`Webhooks::body_limit`] (default 256 KiB); a declared
//!   `Content-Length` over the limit is refused before anything is read. Nothing else buffers
//!   it.
//!
//! Memory held by payloads is then at most `body_limit × max_in_flight`. The request *head* is
//! bounded by actix-web's `HttpServer::client_request_timeout` (5 s by default; keep it at
//! 30 s or less). Neither timeout closes a busy keep-alive connection.
//!
//! # Prove the mounting
//!
//! A misplaced mounting fails silently: the app's own 404 answers every delivery. With the
//! `testing` feature, one line in the app's tests catches it:
//! `kinde_actix::testing::assert_mounted(app, "/kinde/webhook").await` (the `testing` module).
//! The same feature makes signed deliveries as actix-web `TestRequest`s, to drive the whole
//! `App` in a test: `kinde_actix::testing::delivery(&issuer, TestEvent::sample("user.created"))`.
//!
//! # Path semantics
//!
//! One rule, in both mounting forms and in kinde-tower: **the path below the mount point,
//! compared exactly**.
//!
//! - The endpoint is matched by the app's router, like any resource: inside
//!   `web::scope("/hooks")` its resource is relative to `/hooks`.
//! - The middleware compares the path below its mount point: the full request path on the
//!   `App`; on a `web::scope(prefix)`, the path below the prefix.
//!
//! Exact means `/kinde/webhook/`, `//kinde/webhook`, `/kinde/./webhook`, percent-encoded
//! spellings (`/kinde/%77ebhook`, which actix-web decodes for routing: the endpoint answers
//! such a request `404`), `;params` and other cases (`/Kinde/Webhook`) are **not** the
//! webhook's: the app answers them. The query string is not part of the path. If the URL
//! registered in Kinde ends with a slash, mount that spelling too:
//!
//! ```
//! # use actix_web::{web, App};
//! # use kinde_actix::WebhookEndpoint;
//! # let webhooks = kinde_core::Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
//! let endpoint = WebhookEndpoint::new(webhooks);
//! let app = App::new()
//!     .service(web::resource("/kinde/webhook").to(endpoint.clone()))
//!     .service(web::resource("/kinde/webhook/").to(endpoint));
//! ```
//!
//! Pitfalls: a resource registered **after** a `web::scope` whose prefix covers its path is
//! never reached (the scope answers its own 404); `NormalizePath` in front of the endpoint
//! rewrites `/kinde/webhook/` and `//kinde/webhook` to `/kinde/webhook` before routing, so those
//! spellings then reach the webhook too (the token is still verified; that is the app's
//! choice of path policy).
//!
//! actix-web 4 speaks `http` 0.2 while kinde-core speaks `http` 1.x: request headers and the
//! response are converted byte for byte in one module.
//!
//! [`Webhooks`]: kinde_core::Webhooks
//! [`Webhooks::path`]: kinde_core::Webhooks::path
//! [`Webhooks::body_limit`]: kinde_core::Webhooks::body_limit
//! [`WebhooksBuilder`]: kinde_core::WebhooksBuilder
//! [`Outcome`]: kinde_core::Outcome
//!
//! # Features
//!
//! kinde-core's features, forwarded, and the mount proof:
//!
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_debug_implementations)]

mod body;
mod convert;
mod endpoint;
mod exchange;
mod future;
mod middleware;
#[cfg(feature = "testing")]
pub mod testing;

pub use endpoint::WebhookEndpoint;
pub use middleware::WebhookMiddleware;

/// The README's examples, compiled (and run where they can) by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
