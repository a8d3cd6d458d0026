//! The layer over real HTTP on 127.0.0.1: in an axum `Router::layer`, and around a bare
//! `tower::service_fn` served by hyper.

use std::convert::Infallible;
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
use kinde_tower::KindeWebhookLayer;
use tower::ServiceExt as _;

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
    let mut cfg = JwksConfig::default();
    cfg.refetch_cooldown = Duration::from_millis(50);
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

async fn serve_axum(webhooks: Webhooks) -> SocketAddr {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
        .layer(KindeWebhookLayer::new(webhooks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn serve_bare_hyper(webhooks: Webhooks) -> SocketAddr {
    let inner = tower::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
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
    });
    let svc = tower::ServiceBuilder::new()
        .layer(KindeWebhookLayer::new(webhooks))
        .service(inner);
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

/// The behaviour every tower host must show.
async fn behaves(f: &Fixture, addr: SocketAddr, other_route: (&str, &str)) {
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
    let (path, expected) = other_route;
    let resp = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), expected);

    let resp = client
        .get(format!("http://{addr}/kinde/webhook"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");

    let resp = client
        .post(format!("http://{addr}/kinde/webhook"))
        .body(vec![b'a'; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

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

#[tokio::test]
async fn in_an_axum_router() {
    let f = fixture().await;
    let addr = serve_axum(f.webhooks.clone()).await;
    behaves(&f, addr, ("/health", "ok")).await;
    // Other routes get their bodies untouched.
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/echo"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn around_a_bare_service_fn_in_hyper() {
    let f = fixture().await;
    let addr = serve_bare_hyper(f.webhooks.clone()).await;
    behaves(&f, addr, ("/anything", "inner /anything 0")).await;
}

#[tokio::test]
async fn a_chunked_body_stops_being_read_past_the_limit() {
    let f = fixture().await;
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = pulled.clone();
    // 4 MiB in 64 KiB chunks, with no Content-Length.
    let chunks = futures_util::stream::iter(0..64).map(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(vec![b'a'; 64 * 1024])))
    });
    let req = http::Request::post("/kinde/webhook")
        .body(StreamBody::new(chunks))
        .unwrap();
    let inner = tower::service_fn(|_req: http::Request<StreamBody<_>>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
    });
    let svc = tower::ServiceBuilder::new()
        .layer(KindeWebhookLayer::new(f.webhooks.clone()))
        .service(inner);
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 413);
    let limit_chunks = f.webhooks.body_limit() / (64 * 1024);
    assert!(
        pulled.load(Ordering::SeqCst) <= limit_chunks + 1,
        "read {} chunks of 64 KiB past a {} byte limit",
        pulled.load(Ordering::SeqCst),
        f.webhooks.body_limit()
    );
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
        .layer(KindeWebhookLayer::new(f.webhooks.clone()))
        .service(inner);
    let fut = tower::Service::call(
        &mut svc,
        http::Request::post("/kinde/webhook")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    assert_send_static(&fut);
}
