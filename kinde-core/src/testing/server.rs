//! A JWKS endpoint on a loopback port that can go down, come back and misbehave on purpose.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt as _};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type JwksFn = Arc<dyn Fn() -> String + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How the server answers a JWKS request.
///
/// Besides serving the JWKS it can misbehave the ways a hostile or broken endpoint does: answer
/// late or never, send an endless or oversized body, or redirect elsewhere.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum ServerBehaviour {
    /// The issuer's JWKS, 200 (the default).
    #[default]
    Serve,
    /// This status with an empty body.
    Status(u16),
    /// 200 with this body instead of the JWKS (sent with its `Content-Length`).
    Body(Bytes),
    /// A redirect (302) to this location.
    Redirect(String),
    /// A redirect with this status (301, 303, 307, 308, …) to this location.
    RedirectWith(u16, String),
    /// Reads the request and never answers: a response that never starts.
    Hang,
    /// 200 with this body, streamed in 1 KiB chunks without a `Content-Length` (chunked
    /// transfer encoding), so the client cannot know its size up front.
    Chunked(Bytes),
    /// 200, the headers and these first bytes of the body, then nothing more, ever (slowloris).
    /// Declares `content_length` when given; otherwise the body is chunked.
    Stall {
        /// The bytes sent before stalling.
        sent: Bytes,
        /// The `Content-Length` to declare, if any.
        content_length: Option<u64>,
    },
    /// 200 and the issuer's JWKS, `chunk` bytes at a time with a pause of `every` between
    /// chunks (chunked, no `Content-Length`).
    Trickle {
        /// Bytes per chunk (at least 1).
        chunk: usize,
        /// Pause between two chunks.
        every: Duration,
    },
    /// 200 and a chunked body of spaces that never ends.
    Endless,
}

struct Shared {
    jwks: JwksFn,
    fetches: AtomicU64,
    paths: Mutex<Vec<String>>,
    behaviour: Mutex<ServerBehaviour>,
    cache_control: Mutex<Option<String>>,
}

/// A running JWKS endpoint: `GET /.well-known/jwks` and `/.well-known/jwks.json`.
///
/// A cheap handle (clones control the same server). A server started by
/// [`TestIssuer::serve`](super::TestIssuer::serve) runs as long as its issuer (or any handle)
/// lives, so `let url = issuer.serve().await.url();` keeps working; [`JwksServer::stop`] takes it
/// down on purpose.
#[derive(Clone)]
pub struct JwksServer {
    inner: Arc<Running>,
}

struct Running {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksServer")
            .field("addr", &self.inner.addr)
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
            paths: Mutex::new(Vec::new()),
            behaviour: Mutex::new(ServerBehaviour::Serve),
            cache_control: Mutex::new(None),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            inner: Arc::new(Running {
                addr,
                shared,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// `http://127.0.0.1:<port>`: the issuer URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The full JWKS URL (`/.well-known/jwks`).
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks", self.url())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// JWKS requests answered so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.shared.fetches.load(Ordering::SeqCst)
    }

    /// The path of every JWKS request answered so far, in order (`/.well-known/jwks` or
    /// `/.well-known/jwks.json`).
    pub fn paths(&self) -> Vec<String> {
        self.inner
            .shared
            .paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes how requests are answered.
    pub fn set_behaviour(&self, behaviour: ServerBehaviour) {
        *self
            .inner
            .shared
            .behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    /// Sends this `Cache-Control` value with the JWKS (none by default).
    pub fn set_cache_control(&self, value: Option<&str>) {
        *self
            .inner
            .shared
            .cache_control
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = value.map(str::to_owned);
    }

    /// Stops listening and drops every open connection: fetches fail until [`Self::resume`].
    pub fn stop(&self) {
        if let Some(task) = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        self.stop();
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.inner.addr).await {
                Ok(l) => break l,
                Err(_) if attempts < 50 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.inner.addr),
            }
        };
        let task = tokio::spawn(accept_loop(listener, self.inner.shared.clone()));
        *self.inner.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
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

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).boxed_unsync()
}

fn streamed<S>(frames: S) -> Body
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    StreamBody::new(frames.map(|b| Ok(Frame::data(b)))).boxed_unsync()
}

/// `body` in pieces of `chunk` bytes, with a pause of `every` before each piece but the first.
fn pieces(body: Bytes, chunk: usize, every: Duration) -> impl Stream<Item = Bytes> + Send {
    let chunk = chunk.max(1);
    stream::unfold((body, true), move |(mut rest, first)| async move {
        if rest.is_empty() {
            return None;
        }
        if !first && !every.is_zero() {
            tokio::time::sleep(every).await;
        }
        let piece = rest.split_to(chunk.min(rest.len()));
        Some((piece, (rest, false)))
    })
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    if path != "/.well-known/jwks" && path != "/.well-known/jwks.json" {
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    shared
        .paths
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_owned());
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
    let status = |s: u16| StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let resp = match behaviour {
        ServerBehaviour::Serve => builder.body(full(Bytes::from((shared.jwks)()))),
        ServerBehaviour::Body(b) => builder.body(full(b)),
        ServerBehaviour::Status(s) => builder.status(status(s)).body(full(Bytes::new())),
        ServerBehaviour::Redirect(to) => builder
            .status(StatusCode::FOUND)
            .header("location", to)
            .body(full(Bytes::new())),
        ServerBehaviour::RedirectWith(s, to) => builder
            .status(status(s))
            .header("location", to)
            .body(full(Bytes::new())),
        ServerBehaviour::Hang => std::future::pending().await,
        ServerBehaviour::Chunked(b) => builder.body(streamed(pieces(b, 1024, Duration::ZERO))),
        ServerBehaviour::Stall {
            sent,
            content_length,
        } => {
            if let Some(len) = content_length {
                builder = builder.header("content-length", len);
            }
            builder.body(streamed(
                stream::once(async { sent }).chain(stream::pending()),
            ))
        }
        ServerBehaviour::Trickle { chunk, every } => {
            let jwks = Bytes::from((shared.jwks)());
            builder.body(streamed(pieces(jwks, chunk, every)))
        }
        ServerBehaviour::Endless => {
            static SPACES: [u8; 16 * 1024] = [b' '; 16 * 1024];
            builder.body(streamed(stream::repeat(Bytes::from_static(&SPACES))))
        }
    };
    Ok(resp.unwrap_or_else(|_| Response::new(full(Bytes::new()))))
}
