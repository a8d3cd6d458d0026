//! Path semantics of both forms, in process: the path below the mount point, compared exactly.
//! (The same near misses over real HTTP, on both adapters, are in the conformance table of the
//! kinde-tests crate.)

use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt as _, Full};
use kinde_core::Webhooks;
use kinde_tower::{WebhookEndpoint, WebhookLayer};
use tower::{Layer as _, ServiceExt as _};

fn webhooks() -> Webhooks {
    Webhooks::builder()
        .issuer("acme.kinde.com")
        .build()
        .unwrap()
}

/// The near misses of `/kinde/webhook` that are the app's, not the webhook's.
const NEAR_MISSES: &[&str] = &[
    "/kinde/webhook/",
    "//kinde/webhook",
    "/kinde//webhook",
    "/kinde/./webhook",
    "/kinde/../kinde/webhook",
    "/kinde/%77ebhook",
    "/kinde%2Fwebhook",
    "/kinde/webhook;v=1",
    "/KINDE/webhook",
    "/Kinde/Webhook",
    "/kinde/webhooks",
    "/kinde",
];

/// Status and body of `POST uri` through `app`.
async fn post(app: Router, uri: &str) -> (u16, String) {
    let req = http::Request::post(uri)
        .body(axum::body::Body::from("not.a.token"))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn app() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async { (http::StatusCode::NOT_FOUND, "app") })
}

const OURS: (u16, &str) = (400, r#"{"error":"malformed_token"}"#);

#[tokio::test]
async fn near_misses_are_the_apps_in_both_forms() {
    let forms = [
        (
            "endpoint",
            app().route_service("/kinde/webhook", WebhookEndpoint::new(webhooks())),
        ),
        ("layer", app().layer(WebhookLayer::new(webhooks()))),
    ];
    for (form, app) in forms {
        assert_eq!(
            post(app.clone(), "/kinde/webhook").await,
            (OURS.0, OURS.1.into()),
            "{form}"
        );
        assert_eq!(
            post(app.clone(), "/kinde/webhook?source=kinde").await,
            (OURS.0, OURS.1.into()),
            "{form}: the query is not part of the path"
        );
        for uri in NEAR_MISSES {
            assert_eq!(
                post(app.clone(), uri).await,
                (404, "app".into()),
                "{form} {uri}"
            );
        }
    }
}

#[tokio::test]
async fn the_layer_compares_the_path_it_is_handed() {
    // Below nest_service, axum strips the prefix: the layer sees `/kinde/webhook` for a request
    // to `/hooks/kinde/webhook` — the path relative to the mount point, as for the endpoint.
    let relative = WebhookLayer::new(webhooks()).layer(app());
    let nested = app().nest_service("/hooks", relative);
    assert_eq!(
        post(nested.clone(), "/hooks/kinde/webhook").await,
        (OURS.0, OURS.1.into())
    );
    assert_eq!(post(nested, "/kinde/webhook").await, (404, "app".into()));

    // A layer configured with the full path below a nest never sees it.
    let full = Webhooks::builder()
        .issuer("acme.kinde.com")
        .path("/hooks/kinde/webhook")
        .build()
        .unwrap();
    let nested = app().nest_service("/hooks", WebhookLayer::new(full).layer(app()));
    assert_eq!(
        post(nested, "/hooks/kinde/webhook").await,
        (404, "app".into())
    );
}

#[tokio::test]
async fn the_endpoint_takes_every_method_the_router_hands_it() {
    let app = app().route_service("/kinde/webhook", WebhookEndpoint::new(webhooks()));
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let req = http::Request::builder()
            .method(method)
            .uri("/kinde/webhook")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 405, "{method}");
        assert_eq!(resp.headers()["allow"], "POST", "{method}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json",
            "{method}"
        );
    }
}

#[tokio::test]
async fn the_endpoint_is_a_whole_service_for_any_path() {
    // Mounted alone (bare hyper), the endpoint answers every path: the router, if any, decides.
    let resp = WebhookEndpoint::new(webhooks())
        .oneshot(
            http::Request::post("/anything")
                .body(Full::new(bytes::Bytes::from_static(b"x")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
