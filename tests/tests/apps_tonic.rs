//! Real tonic app shapes, served by tonic's own server on 127.0.0.1 with tonic-health as the
//! gRPC service, the two ways tonic users add a plain HTTP route:
//!
//! - the layer around the gRPC services: `Server::builder().accept_http1(true).layer(..)`;
//! - tonic's routes as an axum router plus our endpoint (`Routes::into_axum_router()`,
//!   `route_service`), served with `add_routes`.
//!
//! In each, a signed delivery over HTTP/1.1 is handled once and its retry deduplicated, the
//! gRPC health check still answers over HTTP/2, and the mount proof passes. A misplaced mount
//! (`route_layer`) is answered by tonic's own fallback — HTTP 200 with `grpc-status: 12`, a
//! silent loss — and the proof fails. Without `accept_http1(true)` the connection fails before
//! anything runs: only the socket probe (`MountProbe::send_http1`) sees it.

#[path = "apps/common.rs"]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{client, listener, Kinde};
use kinde_core::testing::MountProbe;
use kinde_tower::testing::{assert_mounted, check_mounted};
use kinde_tower::{WebhookEndpoint, WebhookLayer};
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower::Layer as _;

const PATH: &str = "/kinde/webhook";

/// The gRPC health check answers SERVING over HTTP/2 on the same port.
async fn grpc_health_answers(addr: SocketAddr) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("gRPC connection");
    let mut health = HealthClient::new(channel);
    let resp = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    assert_eq!(resp.into_inner().status, ServingStatus::Serving as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_around_the_grpc_services_with_accept_http1() {
    let kinde = Kinde::start(PATH).await;
    let (_reporter, health) = tonic_health::server::health_reporter();
    // The same composition in process: the layer around tonic's routes.
    let composed = WebhookLayer::new(kinde.webhooks.clone()).layer(Routes::new(health.clone()));
    assert_mounted(composed, PATH).await;

    let (l, addr) = listener().await;
    let server = tokio::spawn(
        Server::builder()
            .accept_http1(true)
            .layer(WebhookLayer::new(kinde.webhooks.clone()))
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(l)),
    );
    MountProbe::new(PATH).send_http1(addr).await.unwrap();
    kinde.delivers_once(addr, PATH).await;
    grpc_health_answers(addr).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_routes_as_an_axum_router_with_the_endpoint() {
    let kinde = Kinde::start(PATH).await;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let router = Routes::new(health)
        .into_axum_router()
        .route_service(PATH, WebhookEndpoint::new(kinde.webhooks.clone()));
    assert_mounted(router.clone(), PATH).await;

    let (l, addr) = listener().await;
    let mut builder = Server::builder().accept_http1(true);
    let server = tokio::spawn(
        builder
            .add_routes(Routes::from(router))
            .serve_with_incoming(TcpIncoming::from(l)),
    );
    MountProbe::new(PATH).send_http1(addr).await.unwrap();
    kinde.delivers_once(addr, PATH).await;
    grpc_health_answers(addr).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misplaced_mount_is_answered_200_by_tonic_and_the_proof_fails() {
    let kinde = Kinde::start(PATH).await;
    let (_reporter, health) = tonic_health::server::health_reporter();
    // route_layer wraps only matched routes: the webhook path falls to tonic's fallback.
    let router = Routes::new(health)
        .into_axum_router()
        .route_layer(WebhookLayer::new(kinde.webhooks.clone()));
    let err = check_mounted(router.clone(), PATH).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(200), "{msg}");
    assert!(msg.contains("lost silently"), "{msg}");

    // Over real HTTP: Kinde would see 200 and count the delivery as delivered.
    let (l, addr) = listener().await;
    let mut builder = Server::builder().accept_http1(true);
    let server = tokio::spawn(
        builder
            .add_routes(Routes::from(router))
            .serve_with_incoming(TcpIncoming::from(l)),
    );
    let token = kinde
        .issuer
        .sign(&kinde_core::testing::TestEvent::sample("user.created").into_claims());
    let resp = client()
        .post(format!("http://{addr}{PATH}"))
        .body(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "12");
    assert!(MountProbe::new(PATH).send_http1(addr).await.is_err());
    assert_eq!(kinde.calls(), 0);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_accept_http1_only_the_socket_probe_sees_the_failure() {
    let kinde = Kinde::start(PATH).await;
    let (_reporter, health) = tonic_health::server::health_reporter();
    // In process the composition is right: there is no transport to get wrong.
    let composed = WebhookLayer::new(kinde.webhooks.clone()).layer(Routes::new(health.clone()));
    assert_mounted(composed, PATH).await;

    let (l, addr) = listener().await;
    let server = tokio::spawn(
        Server::builder()
            .layer(WebhookLayer::new(kinde.webhooks.clone()))
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(l)),
    );
    // gRPC (HTTP/2) works, so nothing looks wrong from the app's side...
    grpc_health_answers(addr).await;
    // ...but an HTTP/1.1 POST, as Kinde sends, gets no answer at all.
    let token = kinde
        .issuer
        .sign(&kinde_core::testing::TestEvent::sample("user.created").into_claims());
    let sent = client()
        .post(format!("http://{addr}{PATH}"))
        .body(token)
        .send()
        .await;
    assert!(sent.is_err(), "an HTTP/1.1 answer: {sent:?}");
    let err = MountProbe::new(PATH).send_http1(addr).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.status(), None, "{msg}");
    assert!(msg.contains("no HTTP/1.1 answer"), "{msg}");
    assert!(msg.contains("accept_http1(true)"), "{msg}");
    assert_eq!(kinde.calls(), 0);
    server.abort();
}
