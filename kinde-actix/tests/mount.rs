//! The mount proof (`kinde_actix::testing`) against actix-web apps assembled the natural ways:
//! each documented mounting passes, each documented misplacement fails with a message saying
//! what answered and how to fix it. Also the path rule (the path below the mount point) and
//! `NormalizePath`'s effect on it.

use actix_web::middleware::{NormalizePath, TrailingSlash};
use actix_web::{web, App, HttpResponse};
use kinde_actix::testing::{assert_mounted, check_mounted};
use kinde_actix::{WebhookEndpoint, WebhookMiddleware};
use kinde_core::Webhooks;

const PATH: &str = "/kinde/webhook";

fn webhooks_at(path: &str) -> Webhooks {
    Webhooks::builder()
        .issuer("acme.kinde.com")
        .path(path)
        .build()
        .unwrap()
}

fn endpoint() -> WebhookEndpoint {
    WebhookEndpoint::new(webhooks_at(PATH))
}

fn middleware() -> WebhookMiddleware {
    WebhookMiddleware::new(webhooks_at(PATH))
}

async fn app_404() -> HttpResponse {
    HttpResponse::NotFound().body("the app's 404")
}

/// Another part of the app under `/kinde`, with its own default service.
fn kinde_scope() -> actix_web::Scope {
    web::scope("/kinde")
        .route("/account", web::get().to(|| async { "account" }))
        .default_service(web::to(app_404))
}

// ---- The documented mountings pass. ----

#[actix_web::test]
async fn the_endpoint_as_a_resource() {
    let app = App::new()
        .route("/health", web::get().to(|| async { "ok" }))
        .service(web::resource(PATH).to(endpoint()))
        .default_service(web::to(app_404));
    assert_mounted(app, PATH).await;
}

#[actix_web::test]
async fn the_endpoint_as_a_route() {
    let app = App::new()
        .route(PATH, web::to(endpoint()))
        .default_service(web::to(app_404));
    assert_mounted(app, PATH).await;
}

#[actix_web::test]
async fn the_endpoint_inside_a_scope_with_the_relative_path() {
    let app = App::new()
        .service(web::scope("/kinde").route("/webhook", web::to(endpoint())))
        .default_service(web::to(app_404));
    assert_mounted(app, PATH).await;
}

#[actix_web::test]
async fn the_endpoint_registered_before_a_scope_covering_its_path() {
    let app = App::new()
        .service(web::resource(PATH).to(endpoint()))
        .service(kinde_scope())
        .default_service(web::to(app_404));
    assert_mounted(app, PATH).await;
}

#[actix_web::test]
async fn the_middleware_on_the_app() {
    let app = App::new()
        .wrap(middleware())
        .service(kinde_scope())
        .default_service(web::to(app_404));
    assert_mounted(app, PATH).await;
}

#[actix_web::test]
async fn the_middleware_on_a_scope_with_the_path_below_it() {
    let app = App::new()
        .service(web::scope("/hooks").wrap(middleware()))
        .default_service(web::to(app_404));
    assert_mounted(app, "/hooks/kinde/webhook").await;
}

#[actix_web::test]
async fn a_second_spelling_mounted_explicitly() {
    let ep = endpoint();
    let app = || {
        App::new()
            .service(web::resource(PATH).to(ep.clone()))
            .service(web::resource("/kinde/webhook/").to(ep.clone()))
            .default_service(web::to(app_404))
    };
    assert_mounted(app(), PATH).await;
    assert_mounted(app(), "/kinde/webhook/").await;
}

// ---- NormalizePath rewrites the path before routing: what reaches the webhook changes. ----

#[actix_web::test]
async fn normalize_path_in_front_of_the_endpoint_lets_slash_variants_reach_it() {
    let app = || {
        App::new()
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .service(web::resource(PATH).to(endpoint()))
            .default_service(web::to(app_404))
    };
    assert_mounted(app(), PATH).await;
    // Rewritten to /kinde/webhook before routing: the app chose that policy for all its routes.
    assert_mounted(app(), "/kinde/webhook/").await;
    assert_mounted(app(), "//kinde//webhook").await;
}

#[actix_web::test]
async fn the_middleware_outside_normalize_path_sees_the_path_as_sent() {
    // `.wrap` calls run last-registered-first: here the webhook middleware runs first.
    let app = || {
        App::new()
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .wrap(middleware())
            .default_service(web::to(app_404))
    };
    assert_mounted(app(), PATH).await;
    let err = check_mounted(app(), "/kinde/webhook/").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{err}");
}

#[actix_web::test]
async fn the_middleware_inside_normalize_path_sees_the_rewritten_path() {
    let app = App::new()
        .wrap(middleware())
        .wrap(NormalizePath::new(TrailingSlash::Trim))
        .default_service(web::to(app_404));
    assert_mounted(app, "/kinde/webhook/").await;
}

// ---- Each documented misplacement fails, saying what answered and how to fix it. ----

async fn misplaced<T, B>(app: App<T>, path: &str, status: u16)
where
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: actix_web::body::MessageBody + 'static,
{
    let err = check_mounted(app, path).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(status), "{msg}");
    for part in [
        &format!("POST {path}")[..],
        &status.to_string(),
        "web::resource(",
        "registered before any `web::scope`",
        "below the scope's prefix",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
}

#[actix_web::test]
async fn misplaced_the_endpoint_registered_after_a_scope_covering_its_path() {
    // actix-web tries services in order; the scope takes every path under /kinde.
    let app = App::new()
        .service(kinde_scope())
        .service(web::resource(PATH).to(endpoint()))
        .default_service(web::to(app_404));
    misplaced(app, PATH, 404).await;
}

#[actix_web::test]
async fn misplaced_the_middleware_on_a_scope_with_the_full_path() {
    // On a scope, the middleware compares the path below the scope: `/kinde/webhook` here.
    let app = App::new()
        .service(
            web::scope("/hooks").wrap(WebhookMiddleware::new(webhooks_at("/hooks/kinde/webhook"))),
        )
        .default_service(web::to(app_404));
    misplaced(app, "/hooks/kinde/webhook", 404).await;
}

#[actix_web::test]
async fn misplaced_the_endpoint_in_a_scope_with_the_full_path() {
    // Resources inside a scope are relative: this one is /kinde/kinde/webhook.
    let app = App::new()
        .service(web::scope("/kinde").route(PATH, web::to(endpoint())))
        .default_service(web::to(app_404));
    misplaced(app, PATH, 404).await;
}

#[actix_web::test]
async fn a_post_only_route_of_the_app_at_the_path_is_reported() {
    // The app's own handler answers: the proof names it.
    let app = App::new()
        .route(
            PATH,
            web::post().to(|| async { HttpResponse::Ok().body("mine") }),
        )
        .default_service(web::to(app_404));
    let err = check_mounted(app, PATH).await.unwrap_err();
    assert!(err.to_string().contains("lost silently"), "{err}");
    assert!(err.to_string().contains("\"mine\""), "{err}");
}
