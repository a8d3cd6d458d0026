//! [`WebhookEndpoint`]: the actix-web handler the app's router mounts.

use actix_web::{web, Handler, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use kinde_core::Webhooks;

use crate::exchange::{self, Precheck};

/// Receives Kinde webhooks wherever the app routes it: an actix-web [`Handler`] answering
/// every request it gets with kinde-core (verified, deduplicated, dispatched).
///
/// It has no path of its own — the app's router decides (the recommended way):
///
/// ```
/// use actix_web::{web, App};
/// use kinde_actix::WebhookEndpoint;
/// use kinde_core::Webhooks;
///
/// let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
/// let endpoint = WebhookEndpoint::new(webhooks);
/// let app = App::new()
///     .route("/health", web::get().to(|| async { "ok" }))
///     .service(web::resource("/kinde/webhook").to(endpoint.clone()))
///     // or inside a scope, with the path relative to it:
///     .service(web::scope("/hooks").route("/kinde", web::to(endpoint)));
/// ```
///
/// Mount it for every method (`web::resource(path).to(..)`, `web::to(..)`), not
/// `web::post().to(..)`: a GET then gets its `405` with `Allow: POST` from kinde-core.
/// Register it **before** any `web::scope` whose prefix covers its path: actix-web tries
/// services in order, and a scope answers every path under its prefix (its own 404 for those
/// it has no route for).
///
/// The router matches exactly (a trailing slash is another path: mount a second resource for
/// it if that is the URL registered in Kinde). actix-web percent-decodes paths before routing;
/// a request whose path was decoded to match (`/kinde/%77ebhook`) is not the webhook's: it is
/// answered `404` with an empty body, as actix-web answers an unrouted path.
///
/// What a stranger can hold is bounded (see the crate docs, "Bounds"): the payload is read
/// chunk by chunk up to [`Webhooks::body_limit`] (413 past it; a declared `Content-Length` over
/// it is refused before reading), within the body deadline (`408 body_timeout`, then the
/// connection is closed), and at most `max_in_flight` at once (`503 too_many_deliveries`).
/// [`Webhooks::path`] is not used: it is the path of [`crate::WebhookMiddleware`].
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    webhooks: Webhooks,
}

impl WebhookEndpoint {
    /// The endpoint answering with this receiver. Build the [`Webhooks`] once, before
    /// `HttpServer::new`, and clone the endpoint into each worker's app: the clones share the
    /// idempotency store and the key cache.
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }

    /// The receiver.
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }
}

impl Handler<(HttpRequest, web::Payload)> for WebhookEndpoint {
    type Output = HttpResponse;
    type Future = LocalBoxFuture<'static, HttpResponse>;

    fn call(&self, (req, payload): (HttpRequest, web::Payload)) -> Self::Future {
        if !exchange::routed_verbatim(&req) {
            return Box::pin(std::future::ready(HttpResponse::NotFound().finish()));
        }
        match exchange::precheck(&self.webhooks, &req, payload.into_inner()) {
            Precheck::Admitted(admitted, payload) => {
                Box::pin(exchange::read_and_handle(admitted, payload))
            }
            Precheck::Answered(early) => Box::pin(std::future::ready(early)),
        }
    }
}
