//! [`WebhookMiddleware`]: the actix-web [`Transform`] that intercepts one path, and its service.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::HttpMessage as _;
use kinde_core::Webhooks;

use crate::exchange::{self, Precheck};
use crate::future::ResponseFuture;

/// Receives Kinde webhooks on [`Webhooks::path`] in front of an actix-web app.
///
/// `App::new().wrap(WebhookMiddleware::new(webhooks))`: a request whose path is exactly the
/// configured one is answered by kinde-core (verified, deduplicated, dispatched); every other
/// request reaches the app untouched, its payload unread. Prefer [`crate::WebhookEndpoint`]
/// where the app has a router: the router then decides, like for any route.
///
/// Where it goes:
///
/// - on the `App` (the usual place): it sees every request, whatever the app's routes, scopes
///   and `default_service`;
/// - on a `web::scope(prefix)`: it sees the requests under the prefix, and compares the path
///   **below** it — configure `/kinde/webhook` on a scope at `/hooks` for `/hooks/kinde/webhook`
///   (the same rule as kinde-tower's layer below an axum `nest`);
/// - with other middleware: `.wrap` calls run last-registered-first. To have the webhook see
///   the path as sent, register it after path-rewriting middleware such as `NormalizePath`
///   (`.wrap(NormalizePath::trim()).wrap(WebhookMiddleware::new(w))`); registered before it,
///   it sees the rewritten path (so `/kinde/webhook/` would reach it).
///
/// The path compared is the one below the mount point (the full request path on the `App`),
/// exactly: `/kinde/webhook/`, `//kinde/webhook`, percent-encoded spellings (which actix-web
/// decodes for routing), `;params` and other cases are the app's.
///
/// The same bounds as [`crate::WebhookEndpoint`] (see the crate docs, "Bounds"): the payload
/// is read chunk by chunk and refused with 413 as soon as it passes [`Webhooks::body_limit`]
/// (a declared `Content-Length` over the limit is refused before anything is read), within the
/// body deadline (408, then the connection is closed), at most `max_in_flight` at once (503).
///
/// ```
/// use actix_web::{web, App};
/// use kinde_actix::WebhookMiddleware;
/// use kinde_core::Webhooks;
///
/// let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
/// let app = App::new()
///     .wrap(WebhookMiddleware::new(webhooks))
///     .route("/health", web::get().to(|| async { "ok" }));
/// ```
#[derive(Debug, Clone)]
pub struct WebhookMiddleware {
    webhooks: Webhooks,
}

impl WebhookMiddleware {
    /// The middleware answering deliveries with this receiver. Build the [`Webhooks`] once,
    /// before `HttpServer::new`, and clone it into each worker's app: the clones share the
    /// idempotency store and the key cache.
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }
}

impl<S, B> Transform<S, ServiceRequest> for WebhookMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = WebhookMiddlewareService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(WebhookMiddlewareService {
            service,
            webhooks: self.webhooks.clone(),
        }))
    }
}

/// The service made by [`WebhookMiddleware`] around the app (not exported: like actix-web's
/// own middleware services, it is named only by the `Transform`).
///
/// The path is matched synchronously in `call`, so the inner service is called there or never:
/// the response future does not need to own it (no `Rc`).
#[derive(Debug)]
pub struct WebhookMiddlewareService<S> {
    service: S,
    webhooks: Webhooks,
}

impl<S, B> Service<ServiceRequest> for WebhookMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if !exchange::is_webhook_path(&self.webhooks, req.request()) {
            return ResponseFuture::inner(self.service.call(req));
        }
        let payload = req.take_payload();
        let (admitted, payload) = match exchange::precheck(&self.webhooks, req.request(), payload) {
            Precheck::Admitted(admitted, payload) => (admitted, payload),
            Precheck::Answered(early) => return ResponseFuture::ready(req.into_response(early)),
        };
        let (http_req, _) = req.into_parts();
        ResponseFuture::webhook(async move {
            let answer = exchange::read_and_handle(admitted, payload).await;
            ServiceResponse::new(http_req, answer)
        })
    }
}
