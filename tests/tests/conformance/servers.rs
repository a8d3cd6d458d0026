//! One real server per adapter and mounting form on 127.0.0.1, each with its own issuer, JWKS
//! server and receiver, built by the same function and mounted in the same app: `GET /health`
//! answering `ok` and `POST /echo` answering the body it received. The endpoint forms are
//! mounted as the docs say (axum `route_service`, actix `web::resource(..).to(..)`); the layer
//! and the middleware as the outermost piece.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kinde_core::testing::{JwksServer, TestIssuer};
use kinde_core::verify::JwksConfig;
use kinde_core::{Event, Webhooks};

/// The JWKS refetch cooldown of the receivers under test.
pub const COOLDOWN: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// kinde-tower's `WebhookEndpoint` in an axum router (`route_service`).
    AxumEndpoint,
    /// kinde-tower's `WebhookLayer`, the last `.layer(..)` of the axum router.
    AxumLayer,
    /// kinde-actix's `WebhookEndpoint` (`web::resource(..).to(..)`).
    ActixEndpoint,
    /// kinde-actix's `WebhookMiddleware` on the `App`.
    ActixMiddleware,
}

impl Adapter {
    pub const ALL: [Adapter; 4] = [
        Adapter::AxumEndpoint,
        Adapter::AxumLayer,
        Adapter::ActixEndpoint,
        Adapter::ActixMiddleware,
    ];
}

/// A running server and what a case may act on.
pub struct Server {
    pub adapter: Adapter,
    pub addr: SocketAddr,
    pub issuer: TestIssuer,
    pub jwks: JwksServer,
    pub path: String,
    calls: Arc<AtomicUsize>,
    stop: Stop,
}

enum Stop {
    Axum(tokio::task::JoinHandle<()>),
    Actix(actix_web::dev::ServerHandle),
}

impl Server {
    /// Handler invocations so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub async fn start(adapter: Adapter) -> Self {
        let issuer = TestIssuer::new();
        let jwks = issuer.serve().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let webhooks = receiver(&jwks, calls.clone());
        let path = webhooks.path().to_owned();
        let (addr, stop) = match adapter {
            Adapter::AxumEndpoint | Adapter::AxumLayer => serve_axum(webhooks, adapter).await,
            Adapter::ActixEndpoint | Adapter::ActixMiddleware => serve_actix(webhooks, adapter),
        };
        Self {
            adapter,
            addr,
            issuer,
            jwks,
            path,
            calls,
            stop,
        }
    }

    pub async fn stop(self) {
        match self.stop {
            Stop::Axum(task) => task.abort(),
            Stop::Actix(handle) => handle.stop(false).await,
        }
    }
}

/// The receiver under test, the same for both adapters: every event type counted as one
/// handler call.
fn receiver(jwks: &JwksServer, calls: Arc<AtomicUsize>) -> Webhooks {
    let cfg = JwksConfig::default().refetch_cooldown(COOLDOWN);
    Webhooks::builder()
        .issuer(jwks.url())
        .jwks_config(cfg)
        .fallback(move |_: Event| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(())
        })
        .build()
        .expect("valid receiver")
}

async fn serve_axum(webhooks: Webhooks, adapter: Adapter) -> (SocketAddr, Stop) {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/echo", post(|body: axum::body::Bytes| async move { body }));
    let app = if adapter == Adapter::AxumEndpoint {
        let path = webhooks.path().to_owned();
        app.route_service(&path, kinde_tower::WebhookEndpoint::new(webhooks))
    } else {
        app.layer(kinde_tower::WebhookLayer::new(webhooks))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, Stop::Axum(task))
}

fn serve_actix(webhooks: Webhooks, adapter: Adapter) -> (SocketAddr, Stop) {
    use actix_web::{web, App, HttpServer};
    // The middleware intercepts its own path; in the endpoint run it is given another path,
    // so only the endpoint answers (one app type for both runs).
    let path = webhooks.path().to_owned();
    let (endpoint_path, middleware) = if adapter == Adapter::ActixEndpoint {
        let unused = Webhooks::builder()
            .issuer("acme.kinde.com")
            .path("/conformance/middleware-not-mounted")
            .build()
            .expect("valid receiver");
        (path, unused)
    } else {
        (
            "/conformance/endpoint-not-mounted".to_owned(),
            webhooks.clone(),
        )
    };
    let server = HttpServer::new(move || {
        App::new()
            .wrap(kinde_actix::WebhookMiddleware::new(middleware.clone()))
            .route("/health", web::get().to(|| async { "ok" }))
            .route(
                "/echo",
                web::post().to(|body: web::Bytes| async move { body }),
            )
            .service(
                web::resource(endpoint_path.as_str())
                    .to(kinde_actix::WebhookEndpoint::new(webhooks.clone())),
            )
    })
    .workers(2)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (addr, Stop::Actix(handle))
}
