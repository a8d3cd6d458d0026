//! A JWKS endpoint on a loopback port that can go down, come back and misbehave on purpose.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type JwksFn = Arc<dyn Fn() -> String + Send + Sync>;

/// How the server answers a JWKS request.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum ServerBehaviour {
    /// The issuer's JWKS, 200 (the default).
    #[default]
    Serve,
    /// This status with an empty body.
    Status(u16),
    /// 200 with this body instead of the JWKS.
    Body(Bytes),
    /// A redirect to this location.
    Redirect(String),
}

struct Shared {
    jwks: JwksFn,
    fetches: AtomicU64,
    behaviour: Mutex<ServerBehaviour>,
    cache_control: Mutex<Option<String>>,
}

/// A running JWKS endpoint: `GET /.well-known/jwks` and `/.well-known/jwks.json`.
/// Stops when dropped.
pub struct JwksServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksServer")
            .field("addr", &self.addr)
            .field("fetches", &self.fetch_count())
            .finish()
    }
}

impl JwksServer {
    pub(crate) async fn start(jwks: JwksFn, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            jwks,
            fetches: AtomicU64::new(0),
            behaviour: Mutex::new(ServerBehaviour::Serve),
            cache_control: Mutex::new(None),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            addr,
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    /// `http://127.0.0.1:<port>`: the issuer URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full JWKS URL (`/.well-known/jwks`).
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks", self.url())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// JWKS requests answered so far.
    pub fn fetch_count(&self) -> u64 {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Changes how requests are answered.
    pub fn set_behaviour(&self, behaviour: ServerBehaviour) {
        *self
            .shared
            .behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    /// Sends this `Cache-Control` value with the JWKS (none by default).
    pub fn set_cache_control(&self, value: Option<&str>) {
        *self
            .shared
            .cache_control
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = value.map(str::to_owned);
    }

    /// Stops listening and drops every open connection: fetches fail until [`Self::resume`].
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        self.stop();
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        let task = tokio::spawn(accept_loop(listener, self.shared.clone()));
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connections live in this set: aborting the loop aborts them too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| answer(req, shared.clone()));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if path != "/.well-known/jwks" && path != "/.well-known/jwks.json" {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    let behaviour = shared
        .behaviour
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut builder = Response::builder().header("content-type", "application/json");
    if let Some(cc) = shared
        .cache_control
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        builder = builder.header("cache-control", cc);
    }
    let resp = match behaviour {
        ServerBehaviour::Serve => builder.body(Full::new(Bytes::from((shared.jwks)()))),
        ServerBehaviour::Body(b) => builder.body(Full::new(b)),
        ServerBehaviour::Status(s) => builder
            .status(StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .body(Full::new(Bytes::new())),
        ServerBehaviour::Redirect(to) => builder
            .status(StatusCode::FOUND)
            .header("location", to)
            .body(Full::new(Bytes::new())),
    };
    Ok(resp.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}
