//! [`WebhookEndpoint`]: the path-less service the router mounts.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use kinde_core::Webhooks;
use tower_service::Service;

use crate::exchange::{self, BoxError};
use crate::{EndpointBody, EndpointFuture};

/// Receives Kinde webhooks wherever the router mounts it: a tower [`Service`] that answers
/// every request it gets with kinde-core (verified, deduplicated, dispatched).
///
/// It has no path of its own — the router decides (the recommended way with axum):
///
/// ```
/// use axum::{routing::get, Router};
/// use kinde_core::Webhooks;
/// use kinde_tower::WebhookEndpoint;
///
/// let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
/// let app: Router = Router::new()
///     .route("/health", get(|| async { "ok" }))
///     .route_service("/kinde/webhook", WebhookEndpoint::new(webhooks))
///     .fallback(|| async { "the app's own fallback" }); // nest, merge, state: all fine
/// ```
///
/// Use `route_service`, not `.route(path, post(..))`: every method must reach the endpoint,
/// so that a GET gets its `405` with `Allow: POST`. Inside `nest(..)`, give the path relative
/// to the nest, as for any route. The path is matched by the router, exactly: register a
/// second route for a second spelling (`/kinde/webhook/` if that is the URL registered in
/// Kinde).
///
/// Answers are `Response<`[`EndpointBody`]`>`, an axum response as they are. With bare hyper,
/// serve it through `hyper_util::service::TowerToHyperService` (mount it on a path with
/// [`crate::WebhookLayer`] instead if hyper serves an app of its own).
///
/// What a stranger can hold is bounded (see the crate docs, "Bounds"): bodies are read up to
/// [`Webhooks::body_limit`] (413 past it; a declared `Content-Length` over it is refused
/// before reading), within the body deadline (`408 body_timeout`, then the connection is
/// closed), and at most `max_in_flight` at once (`503 too_many_deliveries` past it).
/// [`Webhooks::path`] is not used: it is the path of the layer.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    webhooks: Webhooks,
}

impl WebhookEndpoint {
    /// The endpoint answering with this receiver (build it once; clones share its key cache
    /// and store).
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }

    /// The receiver.
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }
}

impl<B> Service<Request<B>> for WebhookEndpoint
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<EndpointBody>;
    type Error = Infallible;
    type Future = EndpointFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> EndpointFuture {
        exchange::answer(&self.webhooks, req)
    }
}
