//! The actix receiver's fixed contract, against the real binary: the same checks as the axum
//! receiver's, plus a graceful stop on SIGINT and SIGTERM.

// `unused_mut`: the shared module has one `let mut` it does not need (left to its owner).
#[path = "../../receiver-app/contract/mod.rs"]
mod contract;

use std::process::Stdio;
use std::time::Duration;

use kinde_core::testing::{TestEvent, TestIssuer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_actix-receiver");

#[tokio::test]
async fn bad_settings_exit_non_zero_naming_the_variable() {
    contract::bad_settings(BIN).await;
}

#[tokio::test]
async fn each_handler_call_prints_one_line() {
    contract::handled_lines(BIN).await;
}

#[tokio::test]
async fn webhook_path_is_literal_never_a_pattern() {
    contract::literal_path(BIN).await;
}

#[tokio::test]
async fn starts_and_serves_while_the_issuer_is_unreachable() {
    contract::issuer_unreachable_at_start(BIN).await;
}

#[tokio::test]
async fn two_receivers_sharing_redis_handle_each_event_once() {
    contract::shared_redis(BIN).await;
}

#[tokio::test]
async fn two_receivers_sharing_a_redis_cluster_handle_each_event_once() {
    contract::shared_redis_cluster(BIN).await;
}

#[tokio::test]
async fn a_bind_address_in_use_is_one_line_naming_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    contract::refuses(
        BIN,
        &[("KINDE_DOMAIN", "acme.kinde.com"), ("BIND", addr.as_str())],
        "BIND",
    )
    .await;
}

/// A delivery in flight when the signal arrives is still answered and handled: the server
/// has said `100 Continue` (it is reading the request) before the signal, and gets the body
/// after it.
#[tokio::test]
async fn sigint_and_sigterm_stop_it_gracefully() {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    for signal in ["-INT", "-TERM"] {
        let addr = contract::free_addr();
        let child = Command::new(BIN)
            .env_clear()
            .env("KINDE_DOMAIN", jwks.url())
            .env("BIND", addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_healthy(addr).await;
        let event = TestEvent::sample("user.created");
        let line = format!("handled user.created {}", event.id());
        let token = issuer.sign(&event.into_claims());

        let mut conn = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /kinde/webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\
             expect: 100-continue\r\nconnection: close\r\n\r\n",
            token.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0; 64];
        let n = bounded(conn.read(&mut buf)).await.unwrap();
        let interim = String::from_utf8_lossy(&buf[..n]);
        assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim:?}");

        let pid = child.id().unwrap().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().await;
        assert!(sent.unwrap().success());

        conn.write_all(token.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        bounded(conn.read_to_end(&mut response)).await.unwrap();
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 200 OK"),
            "{signal}: {response:?}"
        );
        assert!(
            response.ends_with(r#"{"status":"handled"}"#),
            "{response:?}"
        );

        let out = bounded(child.wait_with_output()).await.unwrap();
        assert!(out.status.success(), "kill {signal}: {:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{line}\n"));
    }
}

/// At most 30 s: a bound against hanging, not a timing assertion.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("no progress within 30 s")
}

async fn wait_healthy(addr: std::net::SocketAddr) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(resp) = client.get(format!("http://{addr}/health")).send().await {
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.text().await.unwrap(), "ok");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no answer on /health within 30 s");
}

#[tokio::test]
async fn ordering_supersedes_a_late_update_with_the_memory_and_the_file_store() {
    contract::ordering(BIN).await;
}

#[tokio::test]
async fn without_ordering_a_late_update_runs() {
    contract::ordering_off(BIN).await;
}

#[tokio::test]
async fn ordering_holds_across_two_receivers_sharing_redis() {
    contract::ordering_across_receivers(BIN).await;
}

#[tokio::test]
async fn a_poison_event_is_parked_after_n_failures() {
    contract::parking(BIN).await;
}

#[tokio::test]
async fn metrics_are_served_at_metrics_bind() {
    contract::metrics(BIN).await;
}
