//! One real server per adapter on 127.0.0.1, each with its own issuer, JWKS server and
//! receiver, built by the same function and fronting the same app: `GET /health` answering
//! `ok` and `POST /echo` answering the body it received.

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
    Axum,
    Actix,
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
            Adapter::Axum => serve_axum(webhooks).await,
            Adapter::Actix => serve_actix(webhooks),
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
    let mut cfg = JwksConfig::default();
    cfg.refetch_cooldown = COOLDOWN;
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

async fn serve_axum(webhooks: Webhooks) -> (SocketAddr, Stop) {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/echo", post(|body: axum::body::Bytes| async move { body }))
        .layer(kinde_tower::KindeWebhookLayer::new(webhooks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, Stop::Axum(task))
}

fn serve_actix(webhooks: Webhooks) -> (SocketAddr, Stop) {
    use actix_web::{web, App, HttpServer};
    let server = HttpServer::new(move || {
        App::new()
            .wrap(kinde_actix::KindeWebhooks::new(webhooks.clone()))
            .route("/health", web::get().to(|| async { "ok" }))
            .route(
                "/echo",
                web::post().to(|body: web::Bytes| async move { body }),
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
