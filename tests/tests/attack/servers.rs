//! The receivers under attack, built the way the receiver examples are, on 127.0.0.1: the axum
//! receiver's own `receiver_app::serve_axum_with` (hyper's HTTP/1.1 server with a timer and a
//! header read timeout, the endpoint at `/kinde/webhook`), and an actix-web server set up as
//! `examples/actix-receiver/src/main.rs` is (`client_request_timeout`, no linger after a refused
//! upload, the endpoint through `web::resource(..).to(..)`, two workers). Only the bounds differ: the tests shorten them.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{JwksServer, TestEvent, TestIssuer};
use kinde_core::Webhooks;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Axum,
    Actix,
}

/// The bounds of a receiver under test.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_limit: usize,
    pub max_in_flight: usize,
    pub body_timeout: Duration,
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    /// The library's and the receivers' defaults.
    fn default() -> Self {
        Self {
            body_limit: kinde_core::DEFAULT_BODY_LIMIT,
            max_in_flight: kinde_core::DEFAULT_MAX_IN_FLIGHT,
            body_timeout: kinde_core::DEFAULT_BODY_TIMEOUT,
            header_read_timeout: receiver_app::HEADER_READ_TIMEOUT,
        }
    }
}

pub struct Receiver {
    pub adapter: Adapter,
    pub addr: SocketAddr,
    pub issuer: TestIssuer,
    pub limits: Limits,
    calls: Arc<AtomicUsize>,
    _jwks: JwksServer,
    stop: Stop,
}

enum Stop {
    Axum {
        shutdown: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    },
    Actix(actix_web::dev::ServerHandle),
}

impl Receiver {
    pub async fn start(adapter: Adapter, limits: Limits) -> Self {
        let issuer = TestIssuer::new();
        let jwks = issuer.serve().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let webhooks = Webhooks::builder()
            .issuer(jwks.url())
            .body_limit(limits.body_limit)
            .max_in_flight(limits.max_in_flight)
            .body_timeout(limits.body_timeout)
            .on(move |_: Event<UserCreated>| {
                counted.fetch_add(1, Ordering::SeqCst);
                std::future::ready(())
            })
            .build()
            .expect("valid receiver");
        // The keys are fetched before the attack: a delivery then needs no fetch.
        webhooks.jwks().refresh().await.expect("JWKS fetched");
        let (addr, stop) = match adapter {
            Adapter::Axum => serve_axum(webhooks, limits).await,
            Adapter::Actix => serve_actix(webhooks, limits),
        };
        Self {
            adapter,
            addr,
            issuer,
            limits,
            calls,
            _jwks: jwks,
            stop,
        }
    }

    /// Handler invocations so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A new signed `user.created` delivery's token.
    pub fn token(&self) -> String {
        self.issuer
            .sign(&TestEvent::sample("user.created").into_claims())
    }

    pub async fn stop(self) {
        match self.stop {
            Stop::Axum { shutdown, task } => {
                let _ = shutdown.send(());
                let abort = task.abort_handle();
                // Graceful: bounded, since a test that failed may leave connections open.
                if tokio::time::timeout(Duration::from_secs(30), task)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            }
            Stop::Actix(handle) => handle.stop(false).await,
        }
    }
}

async fn serve_axum(webhooks: Webhooks, limits: Limits) -> (SocketAddr, Stop) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(receiver_app::serve_axum_with(
        listener,
        receiver_app::axum_app(webhooks),
        async move {
            let _ = stopped.await;
        },
        limits.header_read_timeout,
    ));
    (addr, Stop::Axum { shutdown, task })
}

/// As `examples/actix-receiver/src/main.rs` builds its server.
fn serve_actix(webhooks: Webhooks, limits: Limits) -> (SocketAddr, Stop) {
    use actix_web::{web, App, HttpServer};
    let path = webhooks.path().to_owned();
    let server = HttpServer::new(move || {
        App::new()
            .route("/health", web::get().to(|| async { "ok" }))
            .service(
                web::resource(path.as_str())
                    .to(kinde_actix::WebhookEndpoint::new(webhooks.clone())),
            )
    })
    .client_request_timeout(limits.header_read_timeout)
    .client_disconnect_timeout(Duration::ZERO)
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
