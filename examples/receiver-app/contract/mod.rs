//! The receivers' fixed contract (command line, env, stdout lines), checked against a real
//! binary. Included by each receiver's `tests/contract.rs`:
//!
//! ```ignore
//! #[path = "../../receiver-app/contract/mod.rs"]
//! mod contract;
//! contract::all(env!("CARGO_BIN_EXE_axum-receiver")).await;
//! ```

#![allow(dead_code)]

mod sync_grade;
#[allow(unused_imports)] // not every including test binary uses them
pub use sync_grade::*;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kinde_core::testing::{TestEvent, TestIssuer};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running receiver binary with its stdout lines.
pub struct Receiver {
    child: Child,
    pub addr: SocketAddr,
    lines: mpsc::UnboundedReceiver<String>,
}

pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl Receiver {
    pub async fn start(bin: &str, envs: &[(&str, String)]) -> Self {
        let addr = free_addr();
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("BIND", addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start receiver");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send(line);
            }
        });
        let r = Self { child, addr, lines };
        r.wait_healthy().await;
        r
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(resp) = client
                .get(format!("http://{}/health", self.addr))
                .send()
                .await
            {
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.text().await.unwrap(), "ok");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("receiver did not answer /health within 30 s");
    }

    /// POSTs `token` like Kinde does; the status and the body.
    pub async fn deliver(&self, path: &str, token: &str) -> (u16, String) {
        let resp = reqwest::Client::new()
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/jwt")
            .body(token.to_owned())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, token: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/jwt")
            .body(token.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The next stdout line, waiting at most 10 s.
    pub async fn next_line(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(10), self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    /// Stops the receiver (SIGKILL via kill_on_drop semantics) and returns stdout lines left.
    pub async fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill().await;
        let mut rest = Vec::new();
        while let Ok(Some(l)) =
            tokio::time::timeout(Duration::from_secs(2), self.lines.recv()).await
        {
            rest.push(l);
        }
        rest
    }
}

/// Runs the binary with `envs` and expects exit status 2 (bad settings) with one stderr line
/// naming `var`.
pub async fn refuses(bin: &str, envs: &[(&str, &str)], var: &str) {
    let mut cmd = Command::new(bin);
    cmd.env_clear().stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("receiver exits")
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{var}: {:?}", out.status);
    assert!(out.stdout.is_empty(), "{var}: wrote to stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{var}: expected one line, got {stderr:?}");
    assert!(lines[0].contains(var), "{var}: {stderr:?}");
}

/// Bad settings: each names its variable.
pub async fn bad_settings(bin: &str) {
    refuses(bin, &[], "KINDE_DOMAIN").await;
    refuses(
        bin,
        &[("KINDE_DOMAIN", "http://acme.kinde.com")],
        "KINDE_DOMAIN",
    )
    .await;
    refuses(
        bin,
        &[
            ("KINDE_DOMAIN", "acme.kinde.com"),
            ("BIND", "not-an-address"),
        ],
        "BIND",
    )
    .await;
    for path in ["hook", "/health", "/hooks/{id}", "/hooks/*", "/a b"] {
        refuses(
            bin,
            &[("KINDE_DOMAIN", "acme.kinde.com"), ("WEBHOOK_PATH", path)],
            "WEBHOOK_PATH",
        )
        .await;
    }
    for (var, bad) in [
        ("KINDE_ORDERING", "yes"),
        ("KINDE_PARK_AFTER", "0"),
        ("KINDE_PARK_AFTER", "x"),
        ("METRICS_BIND", "nowhere"),
    ] {
        refuses(bin, &[("KINDE_DOMAIN", "acme.kinde.com"), (var, bad)], var).await;
    }
    refuses(
        bin,
        &[
            ("KINDE_DOMAIN", "acme.kinde.com"),
            ("REDIS_URL", "localhost"),
        ],
        "REDIS_URL",
    )
    .await;
    // Two idempotency stores: refused before anything is opened (the file is not created).
    let dir = std::env::temp_dir().join(format!("kinde-contract-{}", std::process::id()));
    let file = dir.join("never-created.redb");
    for var in ["KINDE_STORE_PATH", "REDIS_URL"] {
        refuses(
            bin,
            &[
                ("KINDE_DOMAIN", "acme.kinde.com"),
                ("KINDE_STORE_PATH", file.to_str().unwrap()),
                ("REDIS_URL", "redis://127.0.0.1:1"),
            ],
            var,
        )
        .await;
    }
    assert!(!file.exists(), "the store file was created");
}

/// Deliveries: one stdout line per handler call, exactly `handled <type> <event_id>`.
pub async fn handled_lines(bin: &str) {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let mut r = Receiver::start(
        bin,
        &[
            ("KINDE_DOMAIN", jwks.url()),
            ("WEBHOOK_PATH", "/hooks/kinde".into()),
        ],
    )
    .await;
    let mut expected = Vec::new();
    for ty in [
        "user.created",
        "user.updated",
        "user.deleted",
        "organization.created",
        "role.created",
        "passkey.added",
    ] {
        let ev = TestEvent::sample(ty);
        let id = ev.id().to_owned();
        let token = issuer.sign(&ev.into_claims());
        assert_eq!(r.post("/hooks/kinde", &token).await, 200, "{ty}");
        assert_eq!(r.post("/hooks/kinde", &token).await, 200, "{ty} duplicate");
        let line = r.next_line().await.expect("a handled line");
        assert_eq!(line, format!("handled {ty} {id}"));
        expected.push(line);
    }
    // The default path is not intercepted when WEBHOOK_PATH moves it.
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    assert_eq!(r.post("/kinde/webhook", &token).await, 404);
    let rest = r.stop().await;
    assert!(rest.is_empty(), "unexpected stdout: {rest:?}");
    assert_eq!(jwks.fetch_count(), 1);
}

/// `WEBHOOK_PATH` is a literal path, never a route pattern: a path with a pattern character is
/// refused at start-up (see [`bad_settings`]), and a plain one is matched exactly: its near
/// misses are the app's.
pub async fn literal_path(bin: &str) {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let mut r = Receiver::start(
        bin,
        &[
            ("KINDE_DOMAIN", jwks.url()),
            ("WEBHOOK_PATH", "/hooks/kinde-1".into()),
        ],
    )
    .await;
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());
    for miss in [
        "/hooks/kinde-2",
        "/hooks/kinde-1/",
        "/hooks//kinde-1",
        "/HOOKS/kinde-1",
    ] {
        assert_eq!(post_raw(r.addr, miss, &token).await, 404, "{miss}");
    }
    assert_eq!(post_raw(r.addr, "/hooks/kinde-1", &token).await, 200);
    assert_eq!(
        r.next_line().await.as_deref(),
        Some(format!("handled user.created {id}").as_str())
    );
    let rest = r.stop().await;
    assert!(rest.is_empty(), "unexpected stdout: {rest:?}");
}

/// POSTs `token` to `path` exactly as written (no percent-encoding) and returns the status.
async fn post_raw(addr: SocketAddr, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/jwt\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{token}",
        token.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut resp))
        .await
        .expect("an answer within 30 s")
        .unwrap();
    let resp = String::from_utf8_lossy(&resp);
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {resp:?}"))
}

/// Starts with the issuer unreachable, answers 503, then 200 once the JWKS can be fetched.
pub async fn issuer_unreachable_at_start(bin: &str) {
    let jwks_addr = free_addr();
    let mut r = Receiver::start(bin, &[("KINDE_DOMAIN", format!("http://{jwks_addr}"))]).await;
    let issuer = TestIssuer::new();
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());
    assert_eq!(r.post("/kinde/webhook", &token).await, 503);
    let _jwks = issuer.serve_on(jwks_addr).await;
    // Kinde retries; the receiver refetches after its cooldown (10 s by default).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 503;
    while status == 503 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = r.post("/kinde/webhook", &token).await;
    }
    assert_eq!(status, 200);
    assert_eq!(
        r.next_line().await.as_deref(),
        Some(format!("handled user.created {id}").as_str())
    );
    r.stop().await;
}

/// `REDIS_URL` with one server: two receiver processes sharing one Redis handle each event
/// exactly once, whichever gets the deliveries. Skips (saying why) without
/// `KINDE_TEST_REDIS_URL`, unless `KINDE_REQUIRE_REDIS=1`.
pub async fn shared_redis(bin: &str) {
    if let Some(url) = redis_env("KINDE_TEST_REDIS_URL") {
        two_receivers_share(bin, url).await;
    }
}

/// `REDIS_URL` as a comma-separated list (cluster mode): the same, against the test cluster's
/// six nodes (`KINDE_TEST_REDIS_CLUSTER_URLS`, a 3-master cluster with replicas). Skips like
/// [`shared_redis`].
pub async fn shared_redis_cluster(bin: &str) {
    if let Some(urls) = redis_env("KINDE_TEST_REDIS_CLUSTER_URLS") {
        assert!(urls.contains(','), "a list of nodes: {urls}");
        two_receivers_share(bin, urls).await;
    }
}

/// The variable's value, or `None` after saying why the test skips (a failure instead with
/// `KINDE_REQUIRE_REDIS=1`).
pub(crate) fn redis_env(var: &str) -> Option<String> {
    let value = std::env::var(var).ok().filter(|v| !v.is_empty());
    if value.is_none() {
        assert_ne!(
            std::env::var("KINDE_REQUIRE_REDIS").as_deref(),
            Ok("1"),
            "{var} is not set and KINDE_REQUIRE_REDIS=1: run `source scripts/redis-up.sh`"
        );
        eprintln!("skipped: {var} is not set (run `source scripts/redis-up.sh`)");
    }
    value
}

async fn two_receivers_share(bin: &str, redis_url: String) {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let envs = [("KINDE_DOMAIN", jwks.url()), ("REDIS_URL", redis_url)];
    let mut a = Receiver::start(bin, &envs).await;
    let b = Receiver::start(bin, &envs).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let ev = TestEvent::sample("user.created");
        ids.push(ev.id().to_owned());
        let token = issuer.sign(&ev.into_claims());
        assert_eq!(a.post("/kinde/webhook", &token).await, 200);
        assert_eq!(b.post("/kinde/webhook", &token).await, 200);
        assert_eq!(a.post("/kinde/webhook", &token).await, 200);
    }
    let mut lines = Vec::new();
    for _ in 0..5 {
        lines.push(a.next_line().await.expect("a handled line"));
    }
    let rest_a = a.stop().await;
    let rest_b = b.stop().await;
    assert!(
        rest_a.is_empty() && rest_b.is_empty(),
        "handled twice: {rest_a:?} {rest_b:?}"
    );
    let expected: Vec<String> = ids
        .iter()
        .map(|id| format!("handled user.created {id}"))
        .collect();
    assert_eq!(lines, expected);
}
