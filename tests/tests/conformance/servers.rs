//! One real server per adapter and mounting form on 127.0.0.1, each with its own issuer, JWKS
//! server and receivers, built by the same function and mounted in the same app: `GET /health`
//! answering `ok` and `POST /echo` answering the body it received. The endpoint forms are
//! mounted as the docs say (axum `route_service`, actix `web::resource(..).to(..)`); the layer
//! and the middleware as the outermost piece.
//!
//! Each app mounts two receivers, in the same form: the main one at `/kinde/webhook`, and a
//! tight one at [`TIGHT_PATH`] (one delivery in flight, a short body deadline) for the bounds'
//! cases, so that no success case depends on a short timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kinde_core::event::{Event as Typed, UserCreated};
use kinde_core::store::{
    Claim, ClaimRequest, ClaimToken, Completion, Failed, Failure, Fenced, IdempotencyStore,
    ParkedEvent, StoreError,
};
use kinde_core::testing::{JwksServer, TestIssuer};
use kinde_core::verify::JwksConfig;
use kinde_core::{Event, EventId, MemoryStore, Webhooks};
use tokio::sync::{mpsc, Mutex, Semaphore};

/// The JWKS refetch cooldown of the receivers under test.
pub const COOLDOWN: Duration = Duration::from_millis(50);

/// Where the tight receiver is mounted.
pub const TIGHT_PATH: &str = "/kinde/tight";

/// The tight receiver's body deadline (only failure cases use it).
pub const TIGHT_BODY_TIMEOUT: Duration = Duration::from_secs(1);

/// Event types with handlers of their own (beside the typed `user.created`).
pub const GATED: &str = "test.gated";
pub const FAILING: &str = "test.failing";
/// A handler that panics before its future exists (in its synchronous part).
pub const PANICKING_SYNC: &str = "test.panicking_sync";
/// A handler whose future panics.
pub const PANICKING_ASYNC: &str = "test.panicking_async";

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

/// A real [`MemoryStore`] behind a switch: switched off, every call fails as an unreachable
/// store's would.
#[derive(Default)]
pub struct SwitchStore {
    inner: MemoryStore,
    off: AtomicBool,
}

impl SwitchStore {
    pub fn set_off(&self, off: bool) {
        self.off.store(off, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.off.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("switched off by the test".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for SwitchStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        self.check()?;
        self.inner.claim(request).await
    }
    async fn complete(
        &self,
        id: &EventId,
        token: &ClaimToken,
        completion: &Completion<'_>,
    ) -> Result<Fenced, StoreError> {
        self.check()?;
        self.inner.complete(id, token, completion).await
    }
    async fn release(
        &self,
        id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
    ) -> Result<Fenced, StoreError> {
        self.check()?;
        self.inner.release(id, token, entity).await
    }
    async fn fail(
        &self,
        id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
        failure: &Failure<'_>,
    ) -> Result<Failed, StoreError> {
        self.check()?;
        self.inner.fail(id, token, entity, failure).await
    }
    async fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        self.check()?;
        self.inner.parked().await
    }
    async fn parked_event(&self, id: &EventId) -> Result<Option<ParkedEvent>, StoreError> {
        self.check()?;
        self.inner.parked_event(id).await
    }
    async fn unpark(&self, id: &EventId, entity: Option<&str>) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.unpark(id, entity).await
    }
}

/// The gate of the [`GATED`] handler: it says when it runs, then waits to be let through.
pub struct Gate {
    running: Mutex<mpsc::UnboundedReceiver<()>>,
    running_tx: mpsc::UnboundedSender<()>,
    open: Semaphore,
}

impl Gate {
    fn new() -> Self {
        let (running_tx, running) = mpsc::unbounded_channel();
        Self {
            running: Mutex::new(running),
            running_tx,
            open: Semaphore::new(0),
        }
    }

    /// In the handler.
    async fn pass(&self) {
        let _ = self.running_tx.send(());
        if let Ok(permit) = self.open.acquire().await {
            permit.forget();
        }
    }

    /// Waits (at most 30 s: a bound against hanging) until a gated handler runs.
    pub async fn wait_running(&self) {
        let mut running = self.running.lock().await;
        tokio::time::timeout(Duration::from_secs(30), running.recv())
            .await
            .expect("the gated handler runs within 30 s")
            .expect("the gate is alive");
    }

    /// Lets one gated handler through.
    pub fn let_one_through(&self) {
        self.open.add_permits(1);
    }
}

/// A running server and what a case may act on.
pub struct Server {
    pub adapter: Adapter,
    pub addr: SocketAddr,
    pub issuer: TestIssuer,
    pub jwks: JwksServer,
    pub path: String,
    pub store: Arc<SwitchStore>,
    pub gate: Arc<Gate>,
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
        let store = Arc::new(SwitchStore::default());
        let gate = Arc::new(Gate::new());
        let webhooks = receiver(&jwks, &calls, &store, &gate);
        let tight = tight_receiver(&jwks);
        let path = webhooks.path().to_owned();
        let (addr, stop) = match adapter {
            Adapter::AxumEndpoint | Adapter::AxumLayer => {
                serve_axum(webhooks, tight, adapter).await
            }
            Adapter::ActixEndpoint | Adapter::ActixMiddleware => {
                serve_actix(webhooks, tight, adapter)
            }
        };
        Self {
            adapter,
            addr,
            issuer,
            jwks,
            path,
            store,
            gate,
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

fn jwks_config() -> JwksConfig {
    JwksConfig::default().refetch_cooldown(COOLDOWN)
}

/// The main receiver, the same for both adapters: a typed `user.created` handler, a gated
/// handler and a failing one (each call counted), no fallback (other types are `ignored`),
/// and the switchable store.
fn receiver(
    jwks: &JwksServer,
    calls: &Arc<AtomicUsize>,
    store: &Arc<SwitchStore>,
    gate: &Arc<Gate>,
) -> Webhooks {
    let (typed, gated, failing) = (calls.clone(), calls.clone(), calls.clone());
    let gate = gate.clone();
    Webhooks::builder()
        .issuer(jwks.url())
        .jwks_config(jwks_config())
        .store(store.clone())
        .on(move |_: Typed<UserCreated>| {
            typed.fetch_add(1, Ordering::SeqCst);
            std::future::ready(())
        })
        .on_type(GATED, move |_: Event| {
            gated.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            async move { gate.pass().await }
        })
        .on_type(FAILING, move |_: Event| {
            failing.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err::<(), _>("the handler failed"))
        })
        .on_type(PANICKING_SYNC, |_: Event| -> std::future::Ready<()> {
            panic!("a bug before the first await")
        })
        .on_type(PANICKING_ASYNC, |e: Event| async move {
            // A bug that only shows once the future runs: `data` is `{}` here.
            let _id: String = e.data["user"]["id"].as_str().expect("a user id").to_owned();
        })
        .build()
        .expect("valid receiver")
}

/// The tight receiver: one delivery in flight, a short body deadline, no handler.
fn tight_receiver(jwks: &JwksServer) -> Webhooks {
    Webhooks::builder()
        .issuer(jwks.url())
        .jwks_config(jwks_config())
        .path(TIGHT_PATH)
        .max_in_flight(1)
        .body_timeout(TIGHT_BODY_TIMEOUT)
        .build()
        .expect("valid receiver")
}

async fn serve_axum(webhooks: Webhooks, tight: Webhooks, adapter: Adapter) -> (SocketAddr, Stop) {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/echo", post(|body: axum::body::Bytes| async move { body }));
    let app = if adapter == Adapter::AxumEndpoint {
        let path = webhooks.path().to_owned();
        app.route_service(&path, kinde_tower::WebhookEndpoint::new(webhooks))
            .route_service(TIGHT_PATH, kinde_tower::WebhookEndpoint::new(tight))
    } else {
        app.layer(kinde_tower::WebhookLayer::new(tight))
            .layer(kinde_tower::WebhookLayer::new(webhooks))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, Stop::Axum(task))
}

fn serve_actix(webhooks: Webhooks, tight: Webhooks, adapter: Adapter) -> (SocketAddr, Stop) {
    use actix_web::{web, App, HttpServer};
    // The middleware intercepts its own path; in the endpoint run it is given another path,
    // so only the endpoint answers (one app type for both runs), and the other way round.
    let unused = |path: &str| {
        Webhooks::builder()
            .issuer("acme.kinde.com")
            .path(path)
            .build()
            .expect("valid receiver")
    };
    let (endpoints, middlewares) = if adapter == Adapter::ActixEndpoint {
        let paths = [webhooks.path().to_owned(), TIGHT_PATH.to_owned()];
        let unmounted = [
            unused("/conformance/middleware-not-mounted"),
            unused("/conformance/tight-middleware-not-mounted"),
        ];
        ((paths, [webhooks, tight]), unmounted)
    } else {
        let paths = [
            "/conformance/endpoint-not-mounted".to_owned(),
            "/conformance/tight-endpoint-not-mounted".to_owned(),
        ];
        let unmounted = [unused("/unused"), unused("/unused-tight")];
        ((paths, unmounted), [webhooks, tight])
    };
    let ((paths, endpoint_webhooks), middleware_webhooks) = (endpoints, middlewares);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(kinde_actix::WebhookMiddleware::new(
                middleware_webhooks[1].clone(),
            ))
            .wrap(kinde_actix::WebhookMiddleware::new(
                middleware_webhooks[0].clone(),
            ))
            .route("/health", web::get().to(|| async { "ok" }))
            .route(
                "/echo",
                web::post().to(|body: web::Bytes| async move { body }),
            )
            .service(
                web::resource(paths[0].as_str()).to(kinde_actix::WebhookEndpoint::new(
                    endpoint_webhooks[0].clone(),
                )),
            )
            .service(
                web::resource(paths[1].as_str()).to(kinde_actix::WebhookEndpoint::new(
                    endpoint_webhooks[1].clone(),
                )),
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
