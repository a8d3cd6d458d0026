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

use cases::{Action, Case, Expected, Memo};
use servers::{Adapter, Server, COOLDOWN};

/// What one adapter answered to one case, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: u16,
    /// The body; the app's echo of the request shows as `<echo>`.
    body: String,
    handler_calls: usize,
    allow: Option<String>,
    content_type: Option<String>,
}

async fn run(server: &Server, memo: &mut Memo, case: &Case) -> Seen {
    for action in case.before {
        match action {
            Action::RotateKey => server
                .issuer
                .rotate_to(kinde_core::testing::TestKey::secondary()),
            Action::StopJwks => server.jwks.stop(),
            Action::ResumeJwks => server.jwks.resume().await,
            // At least the cooldown: a lower bound, not a timing assertion.
            Action::PassCooldown => tokio::time::sleep(COOLDOWN * 2).await,
        }
    }
    let req = (case.request)(server, memo);
    let calls_before = server.calls();
    let resp = client::send(server.addr, &req).await;
    let sent = req.sent_bytes();
    let body = if !sent.is_empty() && resp.body == sent {
        "<echo>".to_owned()
    } else {
        String::from_utf8_lossy(&resp.body).into_owned()
    };
    Seen {
        status: resp.status,
        body,
        handler_calls: server.calls() - calls_before,
        allow: resp.header("allow").map(str::to_owned),
        content_type: resp.header("content-type").map(str::to_owned),
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
        let mut seen = Vec::new();
        for (server, memo) in &mut servers {
            seen.push((server.adapter, run(server, memo, case).await));
        }
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
