//! A real `HttpServer` with several workers on 127.0.0.1, for both mounting forms: the one
//! `Webhooks` cloned into every worker shares its store and its key cache.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use actix_web::dev::{Server, Service as _};
use actix_web::{web, App, HttpServer};
use kinde_actix::{WebhookEndpoint, WebhookMiddleware};
use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{JwksServer, TestEvent, TestIssuer};
use kinde_core::Webhooks;

type Workers = Arc<Mutex<HashSet<ThreadId>>>;

struct Fixture {
    issuer: TestIssuer,
    jwks: JwksServer,
    calls: Arc<AtomicUsize>,
    webhooks: Webhooks,
    workers: Workers,
}

async fn fixture() -> Fixture {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    // Built once, before the server; each worker's app gets a clone.
    let webhooks = Webhooks::builder()
        .issuer(jwks.url())
        .on(move |_: Event<UserCreated>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>(()) }
        })
        .build()
        .unwrap();
    Fixture {
        issuer,
        jwks,
        calls,
        webhooks,
        workers: Workers::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_recognises_a_duplicate_on_another_worker_and_one_fetch_serves_all() {
    let f = fixture().await;
    let (webhooks, seen) = (f.webhooks.clone(), f.workers.clone());
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                seen.lock().unwrap().insert(std::thread::current().id());
                srv.call(req)
            })
            .route("/health", web::get().to(|| async { "ok" }))
            .service(web::resource("/kinde/webhook").to(WebhookEndpoint::new(webhooks.clone())))
    });
    let server = server
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    deliveries_are_shared(&f, addr, server.run()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middleware_recognises_a_duplicate_on_another_worker_and_one_fetch_serves_all() {
    let f = fixture().await;
    let (webhooks, seen) = (f.webhooks.clone(), f.workers.clone());
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new()
            .wrap(WebhookMiddleware::new(webhooks.clone()))
            .wrap_fn(move |req, srv| {
                seen.lock().unwrap().insert(std::thread::current().id());
                srv.call(req)
            })
            .route("/health", web::get().to(|| async { "ok" }))
    });
    let server = server
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    deliveries_are_shared(&f, addr, server.run()).await;
}

/// 20 deliveries of one event, each on its own connection, spread over the workers: handled
/// once, duplicates everywhere else, one JWKS fetch.
async fn deliveries_are_shared(f: &Fixture, addr: SocketAddr, server: Server) {
    let handle = server.handle();
    let running = tokio::spawn(server);

    let token = f
        .issuer
        .sign(&TestEvent::sample("user.created").into_claims());
    // No idle connections kept: every request opens its own, and the server spreads
    // connections over its workers.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut bodies = Vec::new();
    for i in 0..20 {
        let resp = client
            .post(format!("http://{addr}/kinde/webhook"))
            .header("connection", "close")
            .header("webhook-id", format!("msg_{i}"))
            .body(token.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "delivery {i}");
        bodies.push(resp.text().await.unwrap());
    }
    assert_eq!(bodies[0], r#"{"status":"handled"}"#);
    assert!(
        bodies[1..].iter().all(|b| b == r#"{"status":"duplicate"}"#),
        "{bodies:?}"
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 1, "handled more than once");
    assert!(
        f.workers.lock().unwrap().len() >= 2,
        "every delivery landed on one worker: the test proves nothing"
    );
    assert_eq!(f.jwks.fetch_count(), 1, "each worker fetched its own keys");

    handle.stop(true).await;
    running.await.unwrap().unwrap();
}
