//! One conformance suite for both adapters and both mounting forms: the table in
//! `conformance/cases.rs` runs against real axum servers (kinde-tower's endpoint with
//! `route_service`, and its layer) and real actix-web servers (kinde-actix's endpoint with
//! `web::resource(..).to(..)`, and its middleware) on 127.0.0.1. Each case must give the
//! expected status, body, headers and handler call on all four, and the answers must be
//! identical; every difference is reported with the case name and the answers.

#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/client.rs"]
mod client;
#[path = "conformance/servers.rs"]
mod servers;

use std::time::Duration;

use cases::{Action, Case, Expected, Memo};
use futures_util::future::join_all;
use kinde_core::testing::TestEvent;
use servers::{Adapter, Server, COOLDOWN, GATED, TIGHT_PATH};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A bound against hanging, never a timing assertion.
const BOUND: Duration = Duration::from_secs(30);

/// What one adapter answered to one case, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: u16,
    /// The body; the app's echo of the request shows as `<echo>`.
    body: String,
    handler_calls: usize,
    allow: Option<String>,
    content_type: Option<String>,
    retry_after: bool,
    /// For keep-alive requests: the `Connection` header, and whether the server closed.
    connection: Option<String>,
    closed: Option<bool>,
}

async fn act(server: &Server, memo: &mut Memo, action: Action) {
    match action {
        Action::RotateKey => server
            .issuer
            .rotate_to(kinde_core::testing::TestKey::secondary()),
        Action::StopJwks => server.jwks.stop(),
        Action::ResumeJwks => server.jwks.resume().await,
        // At least the cooldown: a lower bound, not a timing assertion.
        Action::PassCooldown => tokio::time::sleep(COOLDOWN * 2).await,
        Action::StoreOff => server.store.set_off(true),
        Action::StoreOn => server.store.set_off(false),
        Action::StartGated => {
            let token = server.issuer.sign(&gated_claims());
            memo.gated = Some(token.clone());
            let (addr, req) = (server.addr, cases::deliver(server, token));
            memo.gated_answer = Some(tokio::spawn(async move { client::send(addr, &req).await }));
            server.gate.wait_running().await;
        }
        Action::ReleaseGated => {
            server.gate.let_one_through();
            let answer = memo.gated_answer.take().expect("a gated delivery started");
            let resp = tokio::time::timeout(BOUND, answer)
                .await
                .expect("the gated delivery is answered once let through")
                .expect("the gated delivery's task");
            assert_eq!(
                (
                    resp.status,
                    String::from_utf8_lossy(&resp.body).into_owned()
                ),
                (200, r#"{"status":"handled"}"#.to_owned()),
                "{:?}: the gated delivery",
                server.adapter
            );
        }
        Action::HoldTight => memo.tight_holder = Some(hold_the_permit(server).await),
        Action::ReleaseTight => memo.tight_holder = None,
    }
}

fn gated_claims() -> serde_json::Value {
    TestEvent::raw(GATED, serde_json::json!({})).into_claims()
}

/// Takes the tight receiver's one permit: an upload whose body is being read once the server
/// says `100 Continue`, and that stalls.
async fn hold_the_permit(server: &Server) -> tokio::net::TcpStream {
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {TIGHT_PATH} HTTP/1.1\r\nhost: {}\r\ncontent-length: 1000\r\n\
         expect: 100-continue\r\n\r\n",
        server.addr
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(BOUND, conn.read(&mut buf))
        .await
        .expect("100 Continue within the bound")
        .unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]);
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue"),
        "{:?}: {interim:?}",
        server.adapter
    );
    conn
}

async fn run(server: &Server, memo: &mut Memo, case: &Case) -> Seen {
    for action in case.before {
        act(server, memo, *action).await;
    }
    let req = (case.request)(server, memo);
    let calls_before = server.calls();
    let resp = client::send(server.addr, &req).await;
    let handler_calls = server.calls() - calls_before;
    for action in case.after {
        act(server, memo, *action).await;
    }
    let sent = req.sent_bytes();
    let body = if !sent.is_empty() && resp.body == sent {
        "<echo>".to_owned()
    } else {
        String::from_utf8_lossy(&resp.body).into_owned()
    };
    Seen {
        status: resp.status,
        body,
        handler_calls,
        allow: resp.header("allow").map(str::to_owned),
        content_type: resp.header("content-type").map(str::to_owned),
        retry_after: resp.header("retry-after").is_some(),
        connection: req
            .keep_alive
            .then(|| resp.header("connection").map(str::to_owned))
            .flatten(),
        closed: resp.closed,
    }
}

fn check(case: &Case, seen: &Seen) -> Result<(), String> {
    let e = &case.expect;
    let mut wrong = Vec::new();
    if seen.status != e.status {
        wrong.push(format!("status {} (expected {})", seen.status, e.status));
    }
    let body = match e.body {
        Expected::Code(code) => {
            if seen.content_type.as_deref() != Some("application/json") {
                wrong.push(format!("content-type {:?}", seen.content_type));
            }
            let key = if (200..300).contains(&e.status) {
                "status"
            } else {
                "error"
            };
            format!(r#"{{"{key}":"{code}"}}"#)
        }
        Expected::Text(t) => t.to_owned(),
        Expected::Echo => "<echo>".to_owned(),
    };
    if seen.body != body {
        wrong.push(format!("body {:?} (expected {body:?})", seen.body));
    }
    if seen.handler_calls != usize::from(e.handled) {
        wrong.push(format!(
            "{} handler calls (expected {})",
            seen.handler_calls,
            u8::from(e.handled)
        ));
    }
    if let Some(allow) = e.allow {
        if seen.allow.as_deref() != Some(allow) {
            wrong.push(format!("allow {:?} (expected {allow:?})", seen.allow));
        }
    }
    if seen.status == 503 && !seen.retry_after {
        wrong.push("a 503 without Retry-After".to_owned());
    }
    if e.closes && (seen.connection.as_deref() != Some("close") || seen.closed != Some(true)) {
        wrong.push(format!(
            "connection {:?}, closed {:?} (expected \"close\", and closed)",
            seen.connection, seen.closed
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join(", "))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_and_form_answers_every_case_alike() {
    let table = cases::table();
    let mut servers = Vec::new();
    for adapter in Adapter::ALL {
        servers.push((Server::start(adapter).await, Memo::default()));
    }
    let mut failures = Vec::new();
    for case in &table {
        // The four forms at once (each on its own server): a case that waits for a deadline
        // waits once.
        let seen =
            join_all(servers.iter_mut().map(|(server, memo)| async move {
                (server.adapter, run(server, memo, case).await)
            }))
            .await;
        let (first, expected) = &seen[0];
        for (adapter, answer) in &seen[1..] {
            if answer != expected {
                failures.push(format!(
                    "{}: the forms differ\n    {first:?}: {expected:?}\n    {adapter:?}: {answer:?}",
                    case.name
                ));
            }
        }
        for (adapter, answer) in &seen {
            if let Err(why) = check(case, answer) {
                failures.push(format!("{} ({adapter:?}): {why}", case.name));
            }
        }
    }
    // Every delivery was verified with keys fetched by the receiver: at start, for the
    // unknown kid, the failed fetch while down and the one after it came back.
    for (server, _) in &servers {
        assert!(server.jwks.fetch_count() >= 2, "{:?}", server.adapter);
    }
    for (server, _) in servers {
        server.stop().await;
    }
    assert!(
        failures.is_empty(),
        "{} failures over {} cases:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

/// A client that hangs up while its delivery's handler runs, through a real server of every
/// form: the claim still settles. The handler finishes (its work is moved to a task of its
/// own), the retry is `200 duplicate`, and the handler ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_mid_handler_leaves_no_claim_unsettled() {
    let servers = join_all(Adapter::ALL.map(Server::start)).await;
    join_all(servers.iter().map(hang_up_mid_handler)).await;
    for server in servers {
        server.stop().await;
    }
}

async fn hang_up_mid_handler(server: &Server) {
    let adapter = server.adapter;
    let token = server.issuer.sign(&gated_claims());
    let req = cases::deliver(server, token.clone());
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let bytes = req.encode(server.addr);
    conn.write_all(&bytes).await.unwrap();
    server.gate.wait_running().await;
    drop(conn); // the client hangs up while the handler runs
    server.gate.let_one_through();
    // Retries meanwhile may find the claim still held (409); once settled, a duplicate.
    let settled = async {
        loop {
            let resp = client::send(server.addr, &cases::deliver(server, token.clone())).await;
            if resp.status != 409 {
                return resp;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let resp = tokio::time::timeout(BOUND, settled)
        .await
        .unwrap_or_else(|_| panic!("{adapter:?}: still in progress after 30 s"));
    assert_eq!(
        (
            resp.status,
            String::from_utf8_lossy(&resp.body).into_owned()
        ),
        (200, r#"{"status":"duplicate"}"#.to_owned()),
        "{adapter:?}"
    );
    assert_eq!(
        server.calls(),
        1,
        "{adapter:?}: the handler ran more than once"
    );
}
