//! A real axum app shape: state (`with_state`), tower-http's Trace, Compression (gzip),
//! Timeout and Cors layers, `nest`, `merge` and a `fallback`, served by `axum::serve` on
//! 127.0.0.1 — with the webhook mounted the documented way (`route_service` inside a nest).
//! A signed delivery is handled once and its retry deduplicated; the mount proof passes on
//! this app and fails on the same app with the layer misplaced before the fallback.

#[path = "apps/common.rs"]
mod common;

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use common::{client, listener, Kinde};
use kinde_core::Webhooks;
use kinde_tower::testing::{assert_mounted, check_mounted};
use kinde_tower::{WebhookEndpoint, WebhookLayer};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

#[derive(Clone)]
struct AppState {
    company: &'static str,
}

/// The app's own part: a stateful route, a nested API, a merged router, a big page that
/// compresses, and a single-page-app fallback answering 200 for every other path.
fn app_routes() -> Router<AppState> {
    let api = Router::new().route("/users", get(|| async { "[]" })).route(
        "/company",
        get(|State(s): State<AppState>| async move { s.company }),
    );
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/big", get(|| async { "compress me ".repeat(1000) }))
        .nest("/api", api)
        .merge(Router::new().route("/version", get(|| async { "1.0" })))
}

async fn spa() -> &'static str {
    "<!doctype html><title>app</title>"
}

/// What real apps put around everything. The timeout is generous: a success here must not
/// depend on a short one.
fn middleware(app: Router) -> Router {
    app.layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(CompressionLayer::new().gzip(true))
            .layer(TimeoutLayer::with_status_code(
                http::StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(30),
            ))
            .layer(CorsLayer::permissive()),
    )
}

/// The documented mounting: the endpoint where the router decides, here inside a nest.
fn documented(webhooks: Webhooks) -> Router {
    let app = app_routes()
        .nest(
            "/kinde",
            Router::new().route_service("/webhook", WebhookEndpoint::new(webhooks)),
        )
        .fallback(spa)
        .with_state(AppState { company: "acme" });
    middleware(app)
}

/// The natural mistake: the layer added before the fallback (which it then does not wrap).
fn misplaced(webhooks: Webhooks) -> Router {
    let app = app_routes()
        .layer(WebhookLayer::new(webhooks))
        .fallback(spa)
        .with_state(AppState { company: "acme" });
    middleware(app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_mounting_handles_a_delivery_once_over_real_http() {
    let kinde = Kinde::start("/kinde/webhook").await;
    let app = documented(kinde.webhooks.clone());
    assert_mounted(app.clone(), "/kinde/webhook").await;

    let (l, addr) = listener().await;
    let server = tokio::spawn(async move { axum::serve(l, app).await });
    kinde.delivers_once(addr, "/kinde/webhook").await;

    // The app around it still works: state, nest, merge, fallback, compression, CORS.
    let c = client();
    let get = |path: &'static str| c.get(format!("http://{addr}{path}")).send();
    assert_eq!(
        get("/api/company").await.unwrap().text().await.unwrap(),
        "acme"
    );
    assert_eq!(get("/version").await.unwrap().text().await.unwrap(), "1.0");
    let page = get("/anything/else").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().starts_with("<!doctype html>"));
    let big = c
        .get(format!("http://{addr}/big"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(big.headers()["content-encoding"], "gzip");
    let preflight = c
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/api/users"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight
        .headers()
        .contains_key("access-control-allow-origin"));
    // A webhook GET gets our 405 through all the layers.
    let get_webhook = get("/kinde/webhook").await.unwrap();
    assert_eq!(get_webhook.status(), 405);
    assert_eq!(get_webhook.headers()["allow"], "POST");
    assert_eq!(kinde.calls(), 1);
    server.abort();
}

#[tokio::test]
async fn the_mount_proof_fails_on_the_misplaced_layer() {
    let kinde = Kinde::start("/kinde/webhook").await;
    let err = check_mounted(misplaced(kinde.webhooks.clone()), "/kinde/webhook")
        .await
        .unwrap_err();
    let msg = err.to_string();
    // The SPA fallback answered 200: every delivery would be lost silently.
    assert_eq!(err.status().map(|s| s.as_u16()), Some(200), "{msg}");
    assert!(msg.contains("lost silently"), "{msg}");
    assert!(msg.contains("route_service"), "{msg}");
    assert_eq!(kinde.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_as_the_last_call_also_works_through_the_middleware_stack() {
    let kinde = Kinde::start("/kinde/webhook").await;
    let app = middleware(
        app_routes()
            .fallback(spa)
            .with_state(AppState { company: "acme" }),
    )
    .layer(WebhookLayer::new(kinde.webhooks.clone()));
    assert_mounted(app.clone(), "/kinde/webhook").await;
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move { axum::serve(l, app).await });
    kinde.delivers_once(addr, "/kinde/webhook").await;
    server.abort();
}
