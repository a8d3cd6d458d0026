//! The bounds for strangers, in process, for both forms (the endpoint and the layer): a body
//! that stops or trickles is answered `408 body_timeout` with `Connection: close` once the total
//! deadline passes; past `max_in_flight`, `503 too_many_deliveries` with `Retry-After` at once;
//! the permit comes back with the answer, or when the request is dropped. (Over real sockets,
//! with the close itself: `tests/tests/conformance.rs` and `tests/tests/attack.rs`.)

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt as _};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt as _, StreamBody};
use kinde_core::testing::serde_json;
use kinde_core::Webhooks;
use kinde_tower::{WebhookEndpoint, WebhookLayer};
use tower::{Layer as _, Service, ServiceExt as _};

type TestBody =
    StreamBody<std::pin::Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>>;

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
    body: impl Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static,
) -> Request<TestBody> {
    Request::post("/kinde/webhook")
        .header("content-type", "application/jwt")
        .body(StreamBody::new(Box::pin(body) as _))
        .unwrap()
}

fn data(bytes: &'static [u8]) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from_static(bytes)))
}

/// A body that sends its first bytes and stops.
fn stalled() -> Request<TestBody> {
    request(stream::iter([data(b"eyJhbGciOi")]).chain(stream::pending()))
}

/// A body that sends a byte every 20 ms, forever.
fn trickle() -> Request<TestBody> {
    request(stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((data(b"x"), ()))
    }))
}

fn garbage() -> Request<TestBody> {
    request(stream::iter([data(b"not a token")]))
}

/// `(status, code, headers)` of an answer.
async fn answer<B>(resp: Response<B>) -> (u16, String, http::HeaderMap)
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let code = json.get("error").or(json.get("status")).unwrap();
    (
        parts.status.as_u16(),
        code.as_str().unwrap().to_owned(),
        parts.headers,
    )
}

async fn bounds<S, B>(mut svc: S, form: &str)
where
    S: Service<Request<TestBody>, Response = Response<B>, Error = Infallible>,
    B: Body,
    B::Error: std::fmt::Debug,
{
    for (body, what) in [(stalled(), "stalled"), (trickle(), "trickle")] {
        let resp = tokio::time::timeout(BOUND, svc.ready().await.unwrap().call(body))
            .await
            .expect("answered within the bound")
            .unwrap();
        let (status, code, headers) = answer(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (408, "body_timeout"),
            "{form} {what}"
        );
        assert_eq!(headers["connection"], "close", "{form} {what}");
    }
    // One permit: a delivery being read holds it (from the call on), the next one is refused.
    let held = svc.ready().await.unwrap().call(stalled());
    let resp = svc.ready().await.unwrap().call(garbage()).await.unwrap();
    let (status, code, headers) = answer(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (503, "too_many_deliveries"),
        "{form}"
    );
    assert!(headers.contains_key("retry-after"), "{form}");
    // Dropping the held request gives the permit back.
    drop(held);
    let resp = svc.ready().await.unwrap().call(garbage()).await.unwrap();
    let (status, code, _) = answer(resp).await;
    assert_eq!((status, code.as_str()), (400, "malformed_token"), "{form}");
}

#[tokio::test]
async fn the_endpoint_bounds_bodies_and_deliveries_in_flight() {
    bounds(WebhookEndpoint::new(webhooks()), "endpoint").await;
}

#[tokio::test]
async fn the_layer_bounds_bodies_and_deliveries_in_flight() {
    let app = tower::service_fn(|_: Request<TestBody>| async {
        Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
            Bytes::from_static(b"{\"status\":\"the app\"}"),
        )))
    });
    bounds(WebhookLayer::new(webhooks()).layer(app), "layer").await;
}
