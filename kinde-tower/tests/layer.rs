//! Both mounting forms over real HTTP on 127.0.0.1: the endpoint (axum `route_service`, and
//! alone behind bare hyper) and the layer (the last `Router::layer` of an axum app, and around
//! a bare `tower::service_fn` served by hyper). Every host must behave alike.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{JwksServer, TestEvent, TestIssuer, TestKey};
use kinde_core::verify::JwksConfig;
use kinde_core::Webhooks;
use kinde_tower::{WebhookEndpoint, WebhookLayer};
use tower::ServiceExt as _;

type BoxError = Box<dyn StdError + Send + Sync>;

struct Fixture {
    issuer: TestIssuer,
    jwks: JwksServer,
    calls: Arc<AtomicUsize>,
    webhooks: Webhooks,
}

async fn fixture() -> Fixture {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let cfg = JwksConfig::default().refetch_cooldown(Duration::from_millis(50));
    let webhooks = Webhooks::builder()
        .issuer(jwks.url())
        .jwks_config(cfg)
        .on(move |_: Event<UserCreated>| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(()) }
        })
        .build()
        .unwrap();
    Fixture {
        issuer,
        jwks,
        calls,
        webhooks,
    }
}

/// How the webhook is mounted.
#[derive(Debug, Clone, Copy)]
enum Mount {
    Endpoint,
    Layer,
}

async fn serve_axum(webhooks: Webhooks, mount: Mount) -> SocketAddr {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }));
    let app = match mount {
        Mount::Endpoint => app.route_service("/kinde/webhook", WebhookEndpoint::new(webhooks)),
        Mount::Layer => app.layer(WebhookLayer::new(webhooks)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Serves `svc` with hyper's HTTP/1.1 server (no framework), one task per connection.
async fn serve_hyper<S, B>(svc: S) -> SocketAddr
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A bare hyper app: answers `inner <path> <body length>`.
fn bare_app() -> impl tower::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
        let path = req.uri().path().to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(format!(
            "inner {path} {}",
            body.len()
        )))))
    })
}

async fn post_token(addr: SocketAddr, token: &str, webhook_id: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/kinde/webhook"))
        .header("content-type", "application/jwt")
        .body(token.to_owned());
    if let Some(id) = webhook_id {
        req = req.header("webhook-id", id);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The behaviour every tower host must show. `other_route`: a GET the app answers 200 with
/// this text (none when the endpoint is the whole server).
async fn behaves(f: &Fixture, addr: SocketAddr, other_route: Option<(&str, &str)>) {
    let token = f
        .issuer
        .sign(&TestEvent::sample("user.created").into_claims());
    assert_eq!(
        post_token(addr, &token, Some("m1")).await,
        (200, r#"{"status":"handled"}"#.into())
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        post_token(addr, &token, Some("m1")).await,
        (200, r#"{"status":"duplicate"}"#.into())
    );
    assert_eq!(
        post_token(addr, &token, Some("m2")).await,
        (200, r#"{"status":"duplicate"}"#.into())
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);

    let forged = TestKey::attacker()
        .with_kid("test-primary")
        .sign(&TestEvent::sample("user.created").into_claims());
    assert_eq!(
        post_token(addr, &forged, None).await,
        (401, r#"{"error":"invalid_signature"}"#.into())
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);

    let client = reqwest::Client::new();
    if let Some((path, expected)) = other_route {
        let resp = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), expected);
    }

    let resp = client
        .get(format!("http://{addr}/kinde/webhook"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");

    // Declared over the limit: refused before reading. The early 413 and the close that
    // follows may reach a client still sending as a reset instead: either is a refusal.
    let sent = client
        .post(format!("http://{addr}/kinde/webhook"))
        .body(vec![b'a'; 300 * 1024])
        .send()
        .await;
    match sent {
        Ok(resp) => assert_eq!(resp.status(), 413),
        Err(e) => assert!(is_reset(&e), "neither a 413 nor a reset: {e:?}"),
    }
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);

    f.jwks.stop();
    let rotated_kid = TestKey::secondary();
    f.issuer.rotate_to(rotated_kid);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let new = f
        .issuer
        .sign(&TestEvent::sample("user.created").into_claims());
    assert_eq!(
        post_token(addr, &new, None).await,
        (503, r#"{"error":"jwks_unavailable"}"#.into())
    );
    f.jwks.resume().await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        post_token(addr, &new, None).await,
        (200, r#"{"status":"handled"}"#.into())
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 2);
}

/// Whether `e` is the server closing the connection on a client still sending (a reset, a
/// broken pipe, or the answer cut short), not a timeout or a refused connection.
fn is_reset(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted) {
                return true;
            }
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_closed() || h.is_body_write_aborted() {
                return true;
            }
        }
        source = err.source();
    }
    false
}

#[tokio::test]
async fn the_endpoint_in_an_axum_router() {
    let f = fixture().await;
    let addr = serve_axum(f.webhooks.clone(), Mount::Endpoint).await;
    behaves(&f, addr, Some(("/health", "ok"))).await;
    other_routes_keep_their_bodies(addr).await;
}

#[tokio::test]
async fn the_layer_in_an_axum_router() {
    let f = fixture().await;
    let addr = serve_axum(f.webhooks.clone(), Mount::Layer).await;
    behaves(&f, addr, Some(("/health", "ok"))).await;
    other_routes_keep_their_bodies(addr).await;
}

async fn other_routes_keep_their_bodies(addr: SocketAddr) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/echo"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn the_endpoint_alone_in_bare_hyper() {
    let f = fixture().await;
    let addr = serve_hyper(WebhookEndpoint::new(f.webhooks.clone())).await;
    behaves(&f, addr, None).await;
}

#[tokio::test]
async fn the_layer_around_a_bare_service_fn_in_hyper() {
    let f = fixture().await;
    let svc = tower::ServiceBuilder::new()
        .layer(WebhookLayer::new(f.webhooks.clone()))
        .service(bare_app());
    let addr = serve_hyper(svc).await;
    behaves(&f, addr, Some(("/anything", "inner /anything 0"))).await;
}

/// 4 MiB in 64 KiB chunks, with no Content-Length; counts the chunks pulled.
fn endless_upload(
    pulled: &Arc<AtomicUsize>,
) -> http::Request<impl http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static> {
    let p = pulled.clone();
    let chunks = futures_util::stream::iter(0..64).map(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(vec![b'a'; 64 * 1024])))
    });
    http::Request::post("/kinde/webhook")
        .body(StreamBody::new(chunks))
        .unwrap()
}

#[tokio::test]
async fn a_chunked_body_stops_being_read_past_the_limit() {
    let f = fixture().await;
    let limit_chunks = f.webhooks.body_limit() / (64 * 1024);
    for mount in [Mount::Endpoint, Mount::Layer] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let req = endless_upload(&pulled);
        let status = match mount {
            Mount::Endpoint => WebhookEndpoint::new(f.webhooks.clone())
                .oneshot(req)
                .await
                .unwrap()
                .status(),
            Mount::Layer => tower::ServiceBuilder::new()
                .layer(WebhookLayer::new(f.webhooks.clone()))
                .service(tower::service_fn(|_req: http::Request<_>| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                }))
                .oneshot(req)
                .await
                .unwrap()
                .status(),
        };
        assert_eq!(status, 413, "{mount:?}");
        assert!(
            pulled.load(Ordering::SeqCst) <= limit_chunks + 1,
            "{mount:?}: read {} chunks of 64 KiB past a {} byte limit",
            pulled.load(Ordering::SeqCst),
            f.webhooks.body_limit()
        );
    }
    assert_eq!(f.calls.load(Ordering::SeqCst), 0);
}

use futures_util::StreamExt as _;

#[test]
fn futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());
    let inner = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
    });
    let mut svc = tower::ServiceBuilder::new()
        .layer(WebhookLayer::new(f.webhooks.clone()))
        .service(inner);
    let req = || {
        http::Request::post("/kinde/webhook")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_send_static(&tower::Service::call(&mut svc, req()));
    let mut endpoint = WebhookEndpoint::new(f.webhooks.clone());
    assert_send_static(&tower::Service::call(&mut endpoint, req()));
}
