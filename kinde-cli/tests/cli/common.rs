//! Running the real `kinde-webhooks` binary, and the servers it talks to: its own `issuer`
//! process, our receiver (the receiver binaries' app, on 127.0.0.1) and a receiver that decodes
//! without verifying. Every wait is bounded; every process and server is stopped on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinde_core::testing::TestKey;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const BIN: &str = env!("CARGO_BIN_EXE_kinde-webhooks");

/// Bound on one CLI run (generous: a busy 2-core CI machine, an unoptimised build).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on the issuer's first line: generating a 2048-bit key in an unoptimised build took
/// 4–23 s on a loaded 2-core machine; the bound leaves a wide margin.
const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a finished run printed, and its exit status.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The stdout as one JSON document (panics with the output otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "{self:#?}");
        self
    }
}

/// Runs the CLI with `args` and nothing on stdin.
pub async fn run(args: &[&str]) -> Output {
    run_with_stdin(args, None).await
}

/// Runs the CLI with `args`, writing `stdin` to it when given.
pub async fn run_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start kinde-webhooks");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(bytes).await.unwrap();
        drop(pipe);
    }
    // On timeout the child is dropped, which kills it (kill_on_drop).
    let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kinde-webhooks {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A keys directory holding the given fixture keys (no generation cost), one file each, the
/// last given the newest.
pub fn keys_dir(keys: &[TestKey]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now();
    for (i, key) in keys.iter().enumerate() {
        let path = dir.path().join(format!("key-{i}.pem"));
        std::fs::write(&path, key.private_pem()).unwrap();
        let age = Duration::from_secs(60 * (keys.len() - i) as u64);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(now - age)
            .unwrap();
    }
    dir
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A running `kinde-webhooks issuer`, killed (by PID, through tokio's kill-on-drop) when dropped.
pub struct IssuerProcess {
    child: Child,
    pub url: String,
    pub stderr: Arc<Mutex<String>>,
}

impl IssuerProcess {
    /// Starts `issuer --keys DIR [extra]` and waits (bounded) for its first stdout line.
    pub async fn start(keys: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["issuer", "--keys", path(keys)])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start kinde-webhooks issuer");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(FIRST_LINE_TIMEOUT, lines.next_line())
            .await
            .expect("issuer printed its first line in time")
            .unwrap()
            .unwrap_or_else(|| panic!("issuer exited: {}", stderr.lock().unwrap()));
        // Keep draining stdout so the issuer can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = first
            .strip_prefix("issuer ")
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .to_owned();
        Self { child, url, stderr }
    }

    pub fn first_line(&self) -> String {
        format!("issuer {}", self.url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends a signal (`TERM`, `INT`) and waits (bounded) for the exit status.
    pub async fn signal_and_wait(mut self, signal: &str) -> i32 {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("issuer exits after the signal")
            .unwrap();
        status.code().unwrap_or(-1)
    }

    /// The JWKS it serves at `path`.
    pub async fn jwks(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap()
    }

    pub async fn kids(&self) -> Vec<String> {
        let body = self.jwks("/.well-known/jwks").await.bytes().await.unwrap();
        let jwks: Value = serde_json::from_slice(&body).unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A server on 127.0.0.1 running until dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Our receiver: the app behind the `axum-receiver` binary (`receiver_app`: the same config,
/// handlers and axum server), with its `handled <type> <event_id>` lines recorded instead of
/// printed. Webhook path `/kinde/webhook`.
pub struct OurReceiver {
    pub server: Server,
    handled: Arc<Mutex<Vec<String>>>,
}

impl OurReceiver {
    pub async fn start(issuer: &str) -> Self {
        let issuer = issuer.to_owned();
        let config = receiver_app::Config::from_lookup(|k| match k {
            "KINDE_DOMAIN" => Some(issuer.clone()),
            _ => None,
        })
        .unwrap();
        let handled = Arc::new(Mutex::new(Vec::new()));
        let lines = handled.clone();
        let sink: receiver_app::HandledSink = Arc::new(move |ty: &str, id: &str| {
            lines.lock().unwrap().push(format!("handled {ty} {id}"));
        });
        let webhooks = receiver_app::build_webhooks(&config, sink).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = receiver_app::serve_axum(listener, receiver_app::axum_app(webhooks), async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            server: Server {
                addr,
                stop: Some(stop),
                task,
            },
            handled,
        }
    }

    pub fn webhook_url(&self) -> String {
        self.server.url("/kinde/webhook")
    }

    /// The `handled …` lines so far.
    pub fn handled(&self) -> Vec<String> {
        self.handled.lock().unwrap().clone()
    }
}

/// One request as a receiver saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub content_type: Option<String>,
    pub webhook_id: Option<String>,
    pub body: String,
}

/// A receiver that decodes without verifying: it answers 200 to anything, on any path and
/// method, and records what it got.
pub struct NaiveReceiver {
    pub server: Server,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl NaiveReceiver {
    pub async fn start() -> Self {
        use axum::extract::Request;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let record = record.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let header = |name: &str| {
                    parts
                        .headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                record.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    content_type: header("content-type"),
                    webhook_id: header("webhook-id"),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                // "Decodes" the way the guides do: reads the payload, trusts it, says OK.
                "ok"
            }
        });
        Self {
            server: serve(app).await,
            seen,
        }
    }

    pub fn webhook_url(&self) -> String {
        self.server.url("/kinde/webhook")
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves an axum app on a free loopback port until dropped.
pub async fn serve(app: axum::Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

/// A loopback address nothing listens on (bound, then released).
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// A file in `dir` holding `text`.
pub fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
