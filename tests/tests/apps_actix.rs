//! A real actix-web app shape: Logger, Compress (gzip) and NormalizePath middleware, scopes
//! and a `default_service`, served by `HttpServer` (2 workers) on 127.0.0.1, with the webhook
//! mounted the documented way (`web::resource(..).to(WebhookEndpoint)`, before the scopes). A
//! signed delivery is handled once and its retry deduplicated; the mount proof passes on this
//! app and fails on the same app with the resource registered after a scope covering its path.
//!
//! NormalizePath in front of the endpoint rewrites the path before routing: with it,
//! `/kinde/webhook/` and `//kinde/webhook` reach the webhook too. That is the app's path policy
//! for all its routes; the test shows it.

#[path = "apps/common.rs"]
mod common;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Compress, Logger, NormalizePath, TrailingSlash};
use actix_web::{web, App, HttpResponse, HttpServer};
use common::{client, Kinde};
use kinde_actix::testing::{assert_mounted, check_mounted};
use kinde_actix::WebhookEndpoint;
use kinde_core::testing::MountProbe;

const PATH: &str = "/kinde/webhook";

/// The app's own part: an API scope, an account scope under `/kinde` (covering the
/// webhook's path), a big page that compresses, and a default service.
fn app_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(|| async { "ok" }))
        .route(
            "/big",
            web::get().to(|| async { "compress me ".repeat(1000) }),
        )
        .service(web::scope("/api").route("/users", web::get().to(|| async { "[]" })))
        .service(
            web::scope("/kinde")
                .route("/account", web::get().to(|| async { "account" }))
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().body("no such kinde page")
                })),
        )
        .default_service(web::to(|| async {
            HttpResponse::NotFound().body("the app's 404")
        }));
}

/// The type of an actix `App` as a function returns it.
macro_rules! an_app {
    () => {
        App<
            impl ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<impl actix_web::body::MessageBody>,
                Error = actix_web::Error,
                InitError = (),
            >,
        >
    };
}

/// The documented mounting: the endpoint as a resource, registered before the scopes.
fn documented(endpoint: WebhookEndpoint) -> an_app!() {
    App::new()
        .wrap(Logger::default())
        .wrap(Compress::default())
        .wrap(NormalizePath::new(TrailingSlash::Trim))
        .service(web::resource(PATH).to(endpoint))
        .configure(app_routes)
}

/// The natural mistake: the resource registered after the scope that covers its path.
fn misplaced(endpoint: WebhookEndpoint) -> an_app!() {
    App::new()
        .wrap(Logger::default())
        .wrap(Compress::default())
        .wrap(NormalizePath::new(TrailingSlash::Trim))
        .configure(app_routes)
        .service(web::resource(PATH).to(endpoint))
}

#[actix_web::test]
async fn the_documented_mounting_handles_a_delivery_once_over_real_http() {
    let kinde = Kinde::start(PATH).await;
    let endpoint = WebhookEndpoint::new(kinde.webhooks.clone());
    assert_mounted(documented(endpoint.clone()), PATH).await;

    let server = HttpServer::new(move || documented(endpoint.clone()))
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);

    MountProbe::new(PATH).send_http1(addr).await.unwrap();
    kinde.delivers_once(addr, PATH).await;

    // NormalizePath rewrote these to /kinde/webhook before routing: they reach the webhook.
    for spelling in ["/kinde/webhook/", "//kinde//webhook"] {
        MountProbe::new(spelling).send_http1(addr).await.unwrap();
    }
    // A delivery asking for gzip is still a 200 (Compress may encode our answer).
    let token = kinde
        .issuer
        .sign(&kinde_core::testing::TestEvent::sample("user.created").into_claims());
    let resp = client()
        .post(format!("http://{addr}{PATH}"))
        .header("accept-encoding", "gzip")
        .body(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(kinde.calls(), 2);

    // The app around it still works: scopes, compression, default service.
    let c = client();
    let account = c
        .get(format!("http://{addr}/kinde/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(account.text().await.unwrap(), "account");
    let big = c
        .get(format!("http://{addr}/big"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(big.headers()["content-encoding"], "gzip");
    let missing = c.get(format!("http://{addr}/nope")).send().await.unwrap();
    assert_eq!(missing.text().await.unwrap(), "the app's 404");
    let get_webhook = c.get(format!("http://{addr}{PATH}")).send().await.unwrap();
    assert_eq!(get_webhook.status(), 405);
    assert_eq!(get_webhook.headers()["allow"], "POST");

    handle.stop(true).await;
    running.await.unwrap().unwrap();
}

#[actix_web::test]
async fn the_mount_proof_fails_when_the_resource_comes_after_a_covering_scope() {
    let kinde = Kinde::start(PATH).await;
    let endpoint = WebhookEndpoint::new(kinde.webhooks.clone());
    let err = check_mounted(misplaced(endpoint.clone()), PATH)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{msg}");
    assert!(msg.contains("no such kinde page"), "{msg}");
    assert!(msg.contains("registered before any `web::scope`"), "{msg}");

    // Over real HTTP the same: the scope's 404 for every delivery.
    let server = HttpServer::new(move || misplaced(endpoint.clone()))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    assert!(MountProbe::new(PATH).send_http1(addr).await.is_err());
    assert_eq!(kinde.calls(), 0);
    handle.stop(true).await;
    running.await.unwrap().unwrap();
}
