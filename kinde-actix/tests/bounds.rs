//! The bounds for strangers, in process, for both forms (the endpoint and the middleware): a
//! payload that stops or trickles is answered `408 body_timeout` once the total deadline passes,
//! on a response whose head closes the connection; past `max_in_flight`, `503
//! too_many_deliveries` with `Retry-After` at once; the permit comes back with the answer, or
//! when the request is dropped. (Over real sockets, with the close itself:
//! `tests/tests/conformance.rs` and `tests/tests/attack.rs`.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, Service as _, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App};
use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt as _};
use kinde_actix::{WebhookEndpoint, WebhookMiddleware};
use kinde_core::testing::serde_json;
use kinde_core::Webhooks;

/// A bound against hanging, never a timing assertion.
const BOUND: Duration = Duration::from_secs(30);

fn webhooks() -> Webhooks {
    Webhooks::builder()
        .issuer("acme.kinde.com")
        .max_in_flight(1)
        .body_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
}

fn request(
    payload: impl Stream<Item = Result<Bytes, PayloadError>> + 'static,
) -> actix_http::Request {
    let mut req = TestRequest::post().uri("/kinde/webhook").to_request();
    *req.payload() = Payload::from(Box::pin(payload) as std::pin::Pin<Box<dyn Stream<Item = _>>>);
    req
}

/// A payload that sends its first bytes and stops; `read` says when it was first polled (its
/// delivery holds a permit from then on).
fn stalled(read: Arc<AtomicBool>) -> actix_http::Request {
    let first = stream::once(async move {
        read.store(true, Ordering::SeqCst);
        Ok(Bytes::from_static(b"eyJhbGciOi"))
    });
    request(first.chain(stream::pending()))
}

/// A payload that sends a byte every 20 ms, forever.
fn trickle() -> actix_http::Request {
    request(stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((Ok(Bytes::from_static(b"x")), ()))
    }))
}

fn garbage() -> actix_http::Request {
    request(stream::iter([Ok(Bytes::from_static(b"not a token"))]))
}

async fn answer(resp: ServiceResponse<impl MessageBody>) -> (u16, String, bool) {
    let status = resp.status().as_u16();
    let closes = resp.response().head().connection_type() == ConnectionType::Close;
    let retry_after = resp.headers().contains_key("retry-after");
    let body = test::read_body(resp).await;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let code = json.get("error").or(json.get("status")).unwrap();
    let code = code.as_str().unwrap().to_owned();
    (
        status,
        code,
        if status == 503 { retry_after } else { closes },
    )
}

macro_rules! bounds {
    ($app:expr, $form:literal) => {{
        let svc = test::init_service($app).await;
        for (req, what) in [(stalled(Arc::default()), "stalled"), (trickle(), "trickle")] {
            let resp = tokio::time::timeout(BOUND, test::call_service(&svc, req))
                .await
                .expect("answered within the bound");
            // (408, body_timeout, the head closes the connection)
            assert_eq!(
                answer(resp).await,
                (408, "body_timeout".into(), true),
                "{} {what}",
                $form
            );
        }
        // One permit: a delivery whose payload is being read holds it.
        let read = Arc::new(AtomicBool::new(false));
        let mut held = Box::pin(svc.call(stalled(read.clone())));
        assert!(futures_util::poll!(held.as_mut()).is_pending());
        assert!(
            read.load(Ordering::SeqCst),
            "{}: the held payload is being read",
            $form
        );
        let resp = test::call_service(&svc, garbage()).await;
        // (503, too_many_deliveries, Retry-After)
        assert_eq!(
            answer(resp).await,
            (503, "too_many_deliveries".into(), true),
            "{}",
            $form
        );
        // Dropping the held request gives the permit back.
        drop(held);
        let resp = test::call_service(&svc, garbage()).await;
        assert_eq!(
            answer(resp).await,
            (400, "malformed_token".into(), false),
            "{}",
            $form
        );
    }};
}

#[actix_web::test]
async fn the_endpoint_bounds_payloads_and_deliveries_in_flight() {
    let endpoint = WebhookEndpoint::new(webhooks());
    bounds!(
        App::new().service(web::resource("/kinde/webhook").to(endpoint)),
        "endpoint"
    );
}

#[actix_web::test]
async fn the_middleware_bounds_payloads_and_deliveries_in_flight() {
    bounds!(
        App::new()
            .wrap(WebhookMiddleware::new(webhooks()))
            .route("/health", web::get().to(|| async { "ok" })),
        "middleware"
    );
}
