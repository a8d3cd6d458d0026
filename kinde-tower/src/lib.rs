//! Receive Kinde webhooks in axum, hyper and tonic apps.
//!
//! [`Webhooks`]: kinde_core::Webhooks
//! [`Webhooks::path`]: kinde_core::Webhooks::path
//! [`WebhooksBuilder`]: kinde_core::WebhooksBuilder
//! [`Outcome`]: kinde_core::Outcome
//!
//! Two ways to mount kinde-core's [`Webhooks`] (verify, deduplicate, dispatch):
//!
//! - [`WebhookEndpoint`] — a path-less tower service. **The recommended way wherever there is
//!   a router**: the router decides the path, so `nest`, `merge`, `fallback` and state work as
//!   for any route. With axum, `route_service`:
//!
//! ```
//! use axum::{routing::get, Router};
//! use kinde_core::{Webhooks, event::{Event, UserCreated}};
//! use kinde_tower::WebhookEndpoint;
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
//!     .route_service("/kinde/webhook", WebhookEndpoint::new(webhooks))
//!     .fallback(|| async { "not found" });
//! ```
//!
//! - [`WebhookLayer`] (making [`WebhookService`]) — intercepts [`Webhooks::path`] in front of a
//!   whole service: for tonic, bare hyper, or wrapping an app from outside. It must be the
//!   outermost piece (see [`WebhookLayer`] for the pitfalls).
//!
//! Rejections (401, 405, 413, …) are responses, never service errors; the status of each is
//! chosen by kinde-core, so every mounting form and both adapters answer alike.
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
//! - the body must arrive whole within `body_timeout` (default 10 s) **in total**, counted from
//!   the end of the request head — a 1-byte trickle is cut off too: `408 body_timeout` with
//!   `Connection: close`, and hyper closes the connection;
//! - at most `max_in_flight` deliveries (default 1 024, shared by every clone of the
//!   [`Webhooks`]) are read or handled at once; past it, `503 too_many_deliveries` with
//!   `Retry-After`, at once, never a wait;
//! - a body is never buffered past `body_limit` (default 256 KiB): `413`.
//!
//! Memory held by bodies is then at most `body_limit × max_in_flight`. The request *head* is
//! the server's: hyper without a timer waits for it forever, and `axum::serve` sets none. Serve
//! with hyper's builder and a header read timeout (`http1::Builder::new().timer(TokioTimer::new())
//! .header_read_timeout(..)`), as the repository's axum receiver does (the README's "Mounting"
//! shows the loop). Neither timeout closes a busy keep-alive connection: the body deadline is
//! per request, and the header read timeout runs only while the server waits for a head.
//!
//! # Prove the mounting
//!
//! A misplaced mounting fails silently: the app's own 404 (or a fallback's 200) answers every
//! delivery. With the `testing` feature, one line in the app's tests catches it:
//! `kinde_tower::testing::assert_mounted(app, "/kinde/webhook").await` (the `testing` module).
//!
//! # Path semantics
//!
//! One rule, in both mounting forms and in kinde-actix: **the path below the mount point,
//! compared exactly**.
//!
//! - The endpoint is matched by the router, like any route: inside `nest("/api", ..)` its
//!   route is relative to `/api`.
//! - The layer compares the path it is handed (`req.uri().path()`): the full request path at
//!   the top of an app; below an axum `nest`/`nest_service`, the path with the nest's prefix
//!   stripped (axum strips it before the inner service sees the request).
//!
//! Exact means `/kinde/webhook/`, `//kinde/webhook`, `/kinde/./webhook`, percent-encoded forms
//! (`/kinde/%77ebhook`), `;params` and other cases (`/Kinde/Webhook`) are **not** the
//! webhook's: the app answers them. The query string is not part of the path. If the URL
//! registered in Kinde ends with a slash, mount that spelling too:
//!
//! ```
//! # use kinde_core::Webhooks;
//! # use kinde_tower::WebhookEndpoint;
//! # let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
//! let endpoint = WebhookEndpoint::new(webhooks);
//! let app: axum::Router = axum::Router::new()
//!     .route_service("/kinde/webhook", endpoint.clone())
//!     .route_service("/kinde/webhook/", endpoint); // clones share the store and key cache
//! ```
//!
//! # hyper
//!
//! The endpoint alone is a whole server for the webhook; the layer puts it in front of an
//! existing hyper service. Either is served with
//! `hyper_util::service::TowerToHyperService::new(svc)` on each connection.
//!
//! # tonic
//!
//! Kinde POSTs over HTTP/1.1: a tonic server needs `Server::builder().accept_http1(true)`, or
//! the connection fails before anything of ours runs (nothing is logged). Then either the
//! layer around the gRPC services —
//! `Server::builder().accept_http1(true).layer(WebhookLayer::new(webhooks)).add_service(svc)` —
//! or tonic's routes as an axum router with the endpoint —
//! `Routes::new(svc).into_axum_router().route_service("/kinde/webhook", WebhookEndpoint::new(webhooks))`,
//! served with `Server::builder().accept_http1(true).add_routes(router.into())`. (Both are
//! compiled and run against tonic-health in the repository's tests.) A path nothing took is
//! answered by tonic's fallback with HTTP 200 and `grpc-status: 12`, which Kinde counts as
//! delivered: prove the mounting.
//!
//! # Features
//!
//! kinde-core's features, forwarded, and the mount proof:
//!
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_debug_implementations)]

mod body;
mod endpoint;
mod exchange;
mod future;
mod layer;
mod service;
#[cfg(feature = "testing")]
pub mod testing;

pub use body::{EndpointBody, ResponseBody};
pub use endpoint::WebhookEndpoint;
pub use future::{EndpointFuture, ResponseFuture};
pub use layer::WebhookLayer;
pub use service::WebhookService;

/// The README's examples, compiled (and run where they can) by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
