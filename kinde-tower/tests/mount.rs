//! The mount proof (`kinde_tower::testing`) against axum apps assembled every natural way:
//! each documented mounting passes, and each documented misplacement — where every delivery
//! would be lost to the app's own 404 or fallback — fails with a message saying what
//! answered and how to fix it.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use kinde_core::Webhooks;
use kinde_tower::testing::{assert_mounted, check_mounted};
use kinde_tower::{WebhookEndpoint, WebhookLayer};
use tower::Layer as _;

const PATH: &str = "/kinde/webhook";

fn webhooks() -> Webhooks {
    Webhooks::builder()
        .issuer("acme.kinde.com")
        .build()
        .unwrap()
}

fn webhooks_at(path: &str) -> Webhooks {
    Webhooks::builder()
        .issuer("acme.kinde.com")
        .path(path)
        .build()
        .unwrap()
}

fn endpoint() -> WebhookEndpoint {
    WebhookEndpoint::new(webhooks())
}

fn layer() -> WebhookLayer {
    WebhookLayer::new(webhooks())
}

fn app_routes() -> Router {
    Router::new().route("/health", get(|| async { "ok" }))
}

async fn fallback() -> (http::StatusCode, &'static str) {
    (http::StatusCode::NOT_FOUND, "the app's fallback")
}

/// A single-page app's fallback: 200 for every path (the worst case: deliveries "succeed").
async fn spa_fallback() -> &'static str {
    "<!doctype html><title>app</title>"
}

fn api() -> Router {
    Router::new().route("/users", get(|| async { "users" }))
}

// ---- The documented mountings pass. ----

#[tokio::test]
async fn the_endpoint_beside_a_fallback() {
    let app = app_routes()
        .route_service(PATH, endpoint())
        .fallback(fallback);
    assert_mounted(app, PATH).await;
}

#[tokio::test]
async fn the_endpoint_after_the_fallback() {
    let app = app_routes()
        .fallback(spa_fallback)
        .route_service(PATH, endpoint());
    assert_mounted(app, PATH).await;
}

#[tokio::test]
async fn the_endpoint_inside_a_nest_with_the_relative_path() {
    let app = app_routes()
        .nest(
            "/kinde",
            Router::new().route_service("/webhook", endpoint()),
        )
        .fallback(fallback);
    assert_mounted(app, PATH).await;
}

#[tokio::test]
async fn the_endpoint_in_a_merged_router() {
    let app = app_routes()
        .fallback(fallback)
        .merge(Router::new().route_service(PATH, endpoint()));
    assert_mounted(app, PATH).await;
}

#[tokio::test]
async fn the_endpoint_in_a_router_with_state() {
    #[derive(Clone)]
    struct AppState(&'static str);
    let app: Router = Router::new()
        .route("/name", get(|State(s): State<AppState>| async move { s.0 }))
        .route_service(PATH, endpoint())
        .fallback(fallback)
        .with_state(AppState("acme"));
    assert_mounted(app, PATH).await;
}

#[tokio::test]
async fn a_second_spelling_mounted_explicitly() {
    let ep = endpoint();
    let app = app_routes()
        .route_service(PATH, ep.clone())
        .route_service("/kinde/webhook/", ep)
        .fallback(fallback);
    assert_mounted(app.clone(), PATH).await;
    assert_mounted(app, "/kinde/webhook/").await;
}

#[tokio::test]
async fn the_layer_as_the_last_call_on_the_outer_router() {
    let app = app_routes()
        .nest("/api", api())
        .merge(Router::new().route("/version", get(|| async { "1" })))
        .fallback(spa_fallback)
        .layer(layer());
    assert_mounted(app, PATH).await;
}

#[tokio::test]
async fn the_layer_around_the_whole_app_from_outside() {
    let app = app_routes().nest("/api", api()).fallback(spa_fallback);
    assert_mounted(layer().layer(app), PATH).await;
}

#[tokio::test]
async fn the_layer_around_a_nested_service_with_the_relative_path() {
    // nest_service strips "/hooks": the layer is handed `/kinde/webhook`.
    let inner = layer().layer(app_routes().fallback(fallback));
    let app = app_routes()
        .nest_service("/hooks", inner)
        .fallback(fallback);
    assert_mounted(app, "/hooks/kinde/webhook").await;
}

// ---- Each documented misplacement fails, saying what answered and how to fix it. ----

/// Asserts that the proof fails and that its message names the path, the foreign status and
/// the fix.
async fn misplaced(app: Router, path: &str, status: u16) {
    let err = check_mounted(app, path).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(status), "{msg}");
    for part in [
        &format!("POST {path}")[..],
        &status.to_string(),
        "route_service",
        "last `.layer(..)`",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
}

#[tokio::test]
async fn misplaced_the_layer_before_the_fallback() {
    let app = app_routes().layer(layer()).fallback(fallback);
    misplaced(app, PATH, 404).await;
}

#[tokio::test]
async fn misplaced_the_layer_before_a_spa_fallback_answers_200() {
    let app = app_routes().layer(layer()).fallback(spa_fallback);
    let err = check_mounted(app, PATH).await.unwrap_err();
    assert!(err.to_string().contains("lost silently"), "{err}");
    assert!(err.to_string().contains("<!doctype html>"), "{err}");
}

#[tokio::test]
async fn misplaced_the_layer_before_a_nest_whose_router_has_a_fallback() {
    // The webhook path is under the nest's prefix; the nested fallback answers it.
    let app = app_routes()
        .layer(WebhookLayer::new(webhooks_at("/api/kinde/webhook")))
        .nest("/api", api().fallback(fallback));
    misplaced(app, "/api/kinde/webhook", 404).await;
}

#[tokio::test]
async fn misplaced_the_layer_on_a_nested_router_with_the_full_path() {
    let nested = api().layer(WebhookLayer::new(webhooks_at("/api/kinde/webhook")));
    let app = app_routes().nest("/api", nested).fallback(fallback);
    misplaced(app, "/api/kinde/webhook", 404).await;
}

#[tokio::test]
async fn misplaced_the_layer_on_a_nested_router_with_the_relative_path() {
    let nested = api().layer(layer());
    let app = app_routes().nest("/api", nested).fallback(fallback);
    misplaced(app, "/api/kinde/webhook", 404).await;
}

#[tokio::test]
async fn misplaced_the_layer_as_a_route_layer() {
    let app = app_routes().route_layer(layer()).fallback(fallback);
    misplaced(app, PATH, 404).await;
}

#[tokio::test]
async fn misplaced_a_merged_layer_before_the_fallback() {
    let app = app_routes()
        .merge(Router::new().layer(layer()))
        .fallback(fallback);
    misplaced(app, PATH, 404).await;
}

#[tokio::test]
async fn misplaced_a_merged_layer_after_the_fallback() {
    let app = app_routes()
        .fallback(fallback)
        .merge(Router::new().layer(layer()));
    misplaced(app, PATH, 404).await;
}

#[tokio::test]
async fn misplaced_the_layer_on_a_merged_router_with_routes() {
    let app = app_routes().merge(api().layer(layer())).fallback(fallback);
    misplaced(app, PATH, 404).await;
}

#[tokio::test]
async fn misplaced_the_endpoint_in_a_nest_with_the_full_path() {
    // Routes inside a nest are relative: this one is /kinde/kinde/webhook.
    let app = app_routes()
        .nest("/kinde", Router::new().route_service(PATH, endpoint()))
        .fallback(fallback);
    misplaced(app, PATH, 404).await;
}

#[tokio::test]
async fn the_wrong_path_in_the_proof_is_reported_too() {
    // Proving another path than the one mounted: the app's 404, with the fix.
    let app = app_routes().route_service(PATH, endpoint());
    misplaced(app, "/kinde/webhooks", 404).await;
}

#[tokio::test]
async fn an_app_service_error_is_reported_as_no_answer() {
    let failing = tower::service_fn(
        |_req: http::Request<kinde_tower::testing::ProbeBody>| async {
            Err::<http::Response<String>, _>(std::io::Error::other("database is down"))
        },
    );
    let err = check_mounted(failing, PATH).await.unwrap_err();
    assert_eq!(err.status(), None);
    assert!(err.to_string().contains("database is down"), "{err}");
}
