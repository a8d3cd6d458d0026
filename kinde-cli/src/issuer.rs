//! `issuer`: the JWKS of a keys directory on a loopback port, until SIGINT or SIGTERM.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::cli::IssuerArgs;
use crate::input::{line, note};
use crate::keys;
use crate::Fatal;

/// The JWKs of the directory's keys, cached by file (path, modification time, size): a file is
/// parsed again only when it changes.
struct Published {
    dir: PathBuf,
    cache: Mutex<HashMap<PathBuf, (SystemTime, u64, Value)>>,
}

impl Published {
    fn jwks(&self) -> Result<Value, String> {
        let files = keys::pem_files(&self.dir)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|path, _| files.contains(path));
        let mut jwks = Vec::with_capacity(files.len());
        for path in files {
            let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            match cache.get(&path) {
                Some((modified, len, jwk)) if (*modified, *len) == stamp => jwks.push(jwk.clone()),
                _ => {
                    let jwk = keys::load_file(&path)?.key.jwk();
                    cache.insert(path, (stamp.0, stamp.1, jwk.clone()));
                    jwks.push(jwk);
                }
            }
        }
        Ok(json!({ "keys": jwks }))
    }
}

/// Runs the issuer; returns the exit status (0 on SIGINT/SIGTERM).
pub async fn run(args: IssuerArgs) -> Result<u8, Fatal> {
    if !args.bind.ip().is_loopback() {
        return Err(Fatal(format!(
            "--bind {}: listen on a loopback address (127.0.0.1:PORT): receivers accept a plain-http issuer only on loopback",
            args.bind
        )));
    }
    // Signals first: a SIGTERM right after the first line must stop us cleanly.
    let shutdown = shutdown_signal().map_err(|e| Fatal(format!("cannot watch signals: {e}")))?;
    if keys::ensure_key(&args.keys).map_err(Fatal)? {
        note(&format!(
            "created a 2048-bit RSA key in {}",
            args.keys.display()
        ));
    }
    let published = Arc::new(Published {
        dir: args.keys.clone(),
        cache: Mutex::default(),
    });
    // Every key must load before we say we are up.
    let jwks = published.jwks().map_err(Fatal)?;
    let listener = TcpListener::bind(args.bind)
        .await
        .map_err(|e| Fatal(format!("--bind {}: cannot listen: {e}", args.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Fatal(format!("--bind {}: {e}", args.bind)))?;
    line(&format!("issuer http://{addr}"));
    describe(&args.keys, &jwks, addr);
    serve(listener, published, shutdown).await;
    Ok(0)
}

fn describe(dir: &Path, jwks: &Value, addr: std::net::SocketAddr) {
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .map(|keys| keys.iter().filter_map(|k| k["kid"].as_str()).collect())
        .unwrap_or_default();
    note(&format!(
        "serving the JWKS of {} key(s) from {} at http://{addr}/.well-known/jwks (kids: {}); \
         start a receiver with KINDE_DOMAIN=http://{addr}; Ctrl-C stops",
        kids.len(),
        dir.display(),
        kids.join(", ")
    ));
}

type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Resolves on SIGINT or SIGTERM; the handlers are installed before this returns.
fn shutdown_signal() -> std::io::Result<Shutdown> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(Box::pin(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
        }))
    }
}

async fn serve(listener: TcpListener, published: Arc<Published>, mut shutdown: Shutdown) {
    // Connections live in this set: returning drops (aborts) them.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let published = published.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| answer(req, published.clone()));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    published: Arc<Published>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let respond = |status: StatusCode, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        resp
    };
    let path = req.uri().path();
    if path != "/.well-known/jwks" && path != "/.well-known/jwks.json" {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found"}"#.into(),
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method_not_allowed"}"#.into(),
        );
        resp.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return Ok(resp);
    }
    // Reading the directory is blocking file I/O (and parsing a new key takes a moment).
    let jwks = tokio::task::spawn_blocking(move || published.jwks())
        .await
        .unwrap_or_else(|_| Err("reading the keys failed".into()));
    Ok(match jwks {
        Ok(jwks) => respond(StatusCode::OK, jwks.to_string()),
        Err(e) => {
            note(&format!("error: cannot serve the JWKS: {e}"));
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"keys_unreadable"}"#.into(),
            )
        }
    })
}
