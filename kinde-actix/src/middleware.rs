//! The actix-web [`Transform`] and its middleware service.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::HttpMessage as _;
use kinde_core::Webhooks;

use crate::body::{read_limited, ReadError};
use crate::{convert, ResponseFuture};

/// Receives Kinde webhooks on [`Webhooks::path`] of an actix-web app.
///
/// `App::new().wrap(KindeWebhooks::new(webhooks))`: a request whose path is exactly the
/// configured one is answered by kinde-core (verified, deduplicated, dispatched); every other
/// request reaches the app untouched, its payload unread.
///
/// The payload is read chunk by chunk and refused with 413 as soon as it passes
/// [`Webhooks::body_limit`]; a declared `Content-Length` over the limit is refused before
/// anything is read.
///
/// ```
/// use actix_web::{web, App};
/// use kinde_actix::KindeWebhooks;
/// use kinde_core::Webhooks;
///
/// let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
/// let app = App::new()
///     .wrap(KindeWebhooks::new(webhooks))
///     .route("/health", web::get().to(|| async { "ok" }));
/// ```
#[derive(Debug, Clone)]
pub struct KindeWebhooks {
    webhooks: Webhooks,
}

impl KindeWebhooks {
    /// The middleware answering deliveries with this receiver. Build the [`Webhooks`] once,
    /// before `HttpServer::new`, and clone it into each worker's app: the clones share the
    /// idempotency store and the key cache.
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }
}

impl<S, B> Transform<S, ServiceRequest> for KindeWebhooks
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = KindeWebhooksMiddleware<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(KindeWebhooksMiddleware {
            service,
            webhooks: self.webhooks.clone(),
        }))
    }
}

/// The service made by [`KindeWebhooks`] around the app.
///
/// The path is matched synchronously in `call`, so the inner service is called there or never:
/// the response future does not need to own it (no `Rc`).
#[derive(Debug)]
pub struct KindeWebhooksMiddleware<S> {
    service: S,
    webhooks: Webhooks,
}

impl<S, B> Service<ServiceRequest> for KindeWebhooksMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if req.path() != self.webhooks.path() {
            return ResponseFuture::inner(self.service.call(req));
        }
        let declared = convert::content_length(req.headers());
        if let Some(early) = self
            .webhooks
            .precheck(&convert::method(req.method()), declared)
        {
            return ResponseFuture::ready(req.into_response(convert::response(&early)));
        }
        let webhooks = self.webhooks.clone();
        let payload = req.take_payload();
        ResponseFuture::webhook(async move {
            let answer = match read_limited(payload, webhooks.body_limit()).await {
                Ok(body) => {
                    let headers = convert::request_headers(req.headers());
                    webhooks.handle(&headers, &body).await
                }
                Err(ReadError::TooLarge) => webhooks.payload_too_large(),
                Err(ReadError::Failed) => webhooks.body_read_failed(),
            };
            req.into_response(convert::response(&answer))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use actix_web::dev::Payload;
    use actix_web::error::PayloadError;
    use actix_web::test::{self, TestRequest};
    use actix_web::{web, App, HttpResponse};
    use bytes::Bytes;
    use futures_util::stream;
    use kinde_core::event::{Event, UserCreated};
    use kinde_core::testing::{TestEvent, TestIssuer};

    use super::*;

    const PATH: &str = "/kinde/webhook";

    fn webhooks(issuer_url: &str, calls: &Arc<AtomicUsize>) -> Webhooks {
        let calls = calls.clone();
        Webhooks::builder()
            .issuer(issuer_url)
            .on(move |_: Event<UserCreated>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::convert::Infallible>(()) }
            })
            .build()
            .unwrap()
    }

    /// The app: `/health`, an echo route, and a default service counting what reached it.
    fn app(
        webhooks: Webhooks,
        reached_app: Arc<AtomicUsize>,
    ) -> App<
        impl actix_web::dev::ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .wrap(KindeWebhooks::new(webhooks))
            .route("/health", web::get().to(|| async { "ok" }))
            .route("/echo", web::post().to(|body: Bytes| async move { body }))
            .default_service(web::to(move || {
                reached_app.fetch_add(1, Ordering::SeqCst);
                async { HttpResponse::NotFound().body("app 404") }
            }))
    }

    async fn answer(resp: ServiceResponse<impl MessageBody>) -> (u16, String) {
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await;
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[actix_web::test]
    async fn other_requests_pass_through_untouched() {
        let calls = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(AtomicUsize::new(0));
        let svc =
            test::init_service(app(webhooks("acme.kinde.com", &calls), reached.clone())).await;
        let resp = test::call_service(&svc, TestRequest::get().uri("/health").to_request()).await;
        assert_eq!(answer(resp).await, (200, "ok".into()));
        let req = TestRequest::post()
            .uri("/echo")
            .set_payload("not for us")
            .to_request();
        let resp = test::call_service(&svc, req).await;
        assert_eq!(answer(resp).await, (200, "not for us".into()));
        // Near misses of the path are the app's, whatever the method.
        for uri in [
            "/kinde/webhook/",
            "/kinde/webhooks",
            "/KINDE/webhook",
            "/kinde",
        ] {
            let req = TestRequest::post().uri(uri).set_payload("x").to_request();
            let resp = test::call_service(&svc, req).await;
            assert_eq!(answer(resp).await, (404, "app 404".into()), "{uri}");
        }
        assert_eq!(reached.load(Ordering::SeqCst), 4);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[actix_web::test]
    async fn other_methods_on_the_path_are_405_with_allow_post() {
        let calls = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(AtomicUsize::new(0));
        let svc =
            test::init_service(app(webhooks("acme.kinde.com", &calls), reached.clone())).await;
        for req in [
            TestRequest::get(),
            TestRequest::put(),
            TestRequest::delete(),
            TestRequest::default().method(actix_web::http::Method::HEAD),
        ] {
            let resp = test::call_service(&svc, req.uri(PATH).to_request()).await;
            assert_eq!(resp.headers().get("allow").unwrap(), "POST");
            assert_eq!(
                resp.headers().get("content-type").unwrap(),
                "application/json"
            );
            assert_eq!(
                answer(resp).await,
                (405, r#"{"error":"method_not_allowed"}"#.into())
            );
        }
        assert_eq!(reached.load(Ordering::SeqCst), 0);
    }

    #[actix_web::test]
    async fn a_declared_oversize_is_413_before_reading() {
        let calls = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(AtomicUsize::new(0));
        let svc =
            test::init_service(app(webhooks("acme.kinde.com", &calls), reached.clone())).await;
        // Declares 4 MiB and carries a payload that fails if read at all: precheck answers.
        let mut req = TestRequest::post()
            .uri(PATH)
            .insert_header(("content-length", (4 * 1024 * 1024).to_string()))
            .to_request();
        *req.payload() = failing_payload();
        let resp = test::call_service(&svc, req).await;
        assert_eq!(
            answer(resp).await,
            (413, r#"{"error":"payload_too_large"}"#.into())
        );
        assert_eq!(reached.load(Ordering::SeqCst), 0);
    }

    type PayloadStream =
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, PayloadError>>>>;

    fn streamed(
        s: impl futures_util::Stream<Item = Result<Bytes, PayloadError>> + 'static,
    ) -> Payload {
        Payload::from(Box::pin(s) as PayloadStream)
    }

    fn failing_payload() -> Payload {
        streamed(stream::iter(vec![Err(PayloadError::Incomplete(None))]))
    }

    #[actix_web::test]
    async fn an_endless_upload_is_413_once_past_the_limit() {
        let calls = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(AtomicUsize::new(0));
        let w = webhooks("acme.kinde.com", &calls);
        let limit = w.body_limit();
        let svc = test::init_service(app(w, reached.clone())).await;
        let pulled = Arc::new(AtomicUsize::new(0));
        let p = pulled.clone();
        // No Content-Length, and a body that never ends: only reading it chunk by chunk and
        // stopping at the limit can answer.
        let endless = stream::repeat_with(move || {
            p.fetch_add(1, Ordering::SeqCst);
            Ok::<_, PayloadError>(Bytes::from_static(&[b'a'; 16 * 1024]))
        });
        let mut req = TestRequest::post().uri(PATH).to_request();
        *req.payload() = streamed(endless);
        let resp = test::call_service(&svc, req).await;
        assert_eq!(
            answer(resp).await,
            (413, r#"{"error":"payload_too_large"}"#.into())
        );
        assert_eq!(pulled.load(Ordering::SeqCst), limit / (16 * 1024) + 1);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[actix_web::test]
    async fn a_failed_upload_is_400() {
        let calls = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(AtomicUsize::new(0));
        let svc = test::init_service(app(webhooks("acme.kinde.com", &calls), reached)).await;
        let mut req = TestRequest::post().uri(PATH).to_request();
        *req.payload() = failing_payload();
        let resp = test::call_service(&svc, req).await;
        assert_eq!(
            answer(resp).await,
            (400, r#"{"error":"body_read_failed"}"#.into())
        );
    }

    #[actix_web::test]
    async fn a_signed_delivery_is_handled_once() {
        let issuer = TestIssuer::new();
        let jwks = issuer.serve().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(AtomicUsize::new(0));
        let svc = test::init_service(app(webhooks(&jwks.url(), &calls), reached.clone())).await;
        let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
        let send = |id: &str| {
            TestRequest::post()
                .uri(PATH)
                .insert_header(("content-type", "application/jwt"))
                .insert_header(("webhook-id", id.to_owned()))
                .set_payload(token.clone())
                .to_request()
        };
        let resp = test::call_service(&svc, send("msg_1")).await;
        assert_eq!(answer(resp).await, (200, r#"{"status":"handled"}"#.into()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The same event again, even under a new webhook-id: answered, not handled again.
        for id in ["msg_1", "msg_2"] {
            let resp = test::call_service(&svc, send(id)).await;
            assert_eq!(
                answer(resp).await,
                (200, r#"{"status":"duplicate"}"#.into())
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A token from someone else under the issuer's kid is refused.
        let forged = kinde_core::testing::TestKey::attacker()
            .with_kid(issuer.signer().kid())
            .sign(&TestEvent::sample("user.created").into_claims());
        let req = TestRequest::post()
            .uri(PATH)
            .set_payload(forged)
            .to_request();
        let resp = test::call_service(&svc, req).await;
        assert_eq!(
            answer(resp).await,
            (401, r#"{"error":"invalid_signature"}"#.into())
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(reached.load(Ordering::SeqCst), 0);
        assert_eq!(jwks.fetch_count(), 1);
    }
}
