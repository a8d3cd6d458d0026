//! `cargo run -p demo`: the axum receiver, in-process, against a local test issuer. No Kinde
//! account, no Redis, no network. Sends a scripted series of real HTTP deliveries and prints
//! what each got; exits non-zero if any row did not behave as expected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kinde_core::testing::{TestEvent, TestIssuer, TestKey};
use receiver_app::{axum_app, build_webhooks, serve_axum, Config, HandledSink};

struct Row {
    what: &'static str,
    method: &'static str,
    body: String,
    webhook_id: Option<&'static str>,
    expect_status: u16,
    expect_handler: bool,
}

#[tokio::main]
async fn main() {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;

    let env: HashMap<&str, String> = HashMap::from([("KINDE_DOMAIN", jwks.url())]);
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("demo config");
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink: HandledSink = {
        let handled = handled.clone();
        Arc::new(move |ty, id| handled.lock().unwrap().push(format!("{ty} {id}")))
    };
    let webhooks = build_webhooks(&config, sink).expect("receiver");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}{}",
        listener.local_addr().unwrap(),
        config.webhook_path
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_axum(listener, axum_app(webhooks), async {
        let _ = stopped.await;
    }));

    let created = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let stale_time = time::OffsetDateTime::now_utc() - time::Duration::days(3);
    let claims = |ty: &str| TestEvent::sample(ty).into_claims();
    let rows = vec![
        Row {
            what: "user.created",
            method: "POST",
            body: created.clone(),
            webhook_id: Some("msg_1"),
            expect_status: 200,
            expect_handler: true,
        },
        Row {
            what: "same delivery again (Kinde retry)",
            method: "POST",
            body: created.clone(),
            webhook_id: Some("msg_1"),
            expect_status: 200,
            expect_handler: false,
        },
        Row {
            what: "same token, new webhook-id (replay)",
            method: "POST",
            body: created.clone(),
            webhook_id: Some("msg_evil"),
            expect_status: 200,
            expect_handler: false,
        },
        Row {
            what: "forged token (attacker key, real kid)",
            method: "POST",
            body: TestKey::attacker()
                .with_kid(issuer.signer().kid())
                .sign(&claims("user.created")),
            webhook_id: None,
            expect_status: 401,
            expect_handler: false,
        },
        Row {
            what: "stale token (3 days old)",
            method: "POST",
            body: issuer.sign(
                &TestEvent::sample("user.created")
                    .timestamp(stale_time)
                    .into_claims(),
            ),
            webhook_id: None,
            expect_status: 401,
            expect_handler: false,
        },
        Row {
            what: "unknown type passkey.added (fallback)",
            method: "POST",
            body: issuer.sign(&claims("passkey.added")),
            webhook_id: None,
            expect_status: 200,
            expect_handler: true,
        },
        Row {
            what: "user.deleted",
            method: "POST",
            body: issuer.sign(&claims("user.deleted")),
            webhook_id: None,
            expect_status: 200,
            expect_handler: true,
        },
        Row {
            what: "GET on the webhook path",
            method: "GET",
            body: String::new(),
            webhook_id: None,
            expect_status: 405,
            expect_handler: false,
        },
        Row {
            what: "300 KiB body",
            method: "POST",
            body: "a".repeat(300 * 1024),
            webhook_id: None,
            expect_status: 413,
            expect_handler: false,
        },
    ];

    let client = reqwest::Client::new();
    println!(
        "kinde-webhooks demo: axum receiver at {url}, local issuer at {}\n",
        jwks.url()
    );
    println!(
        "{:<2} {:<40} {:>6} {:<26} {:<8} as expected",
        "#", "delivery", "status", "answer", "handler"
    );
    let mut failures = 0;
    for (i, row) in rows.iter().enumerate() {
        let before = handled.lock().unwrap().len();
        let mut req = match row.method {
            "GET" => client.get(&url),
            _ => client
                .post(&url)
                .header("content-type", "application/jwt")
                .body(row.body.clone()),
        };
        if let Some(id) = row.webhook_id {
            req = req.header("webhook-id", id);
        }
        let (status, answer) = match req.send().await {
            Ok(resp) => (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            ),
            Err(e) => (0, format!("request failed: {e}")),
        };
        let ran = handled.lock().unwrap().len() > before;
        let ok = status == row.expect_status && ran == row.expect_handler;
        if !ok {
            failures += 1;
        }
        let answer = answer
            .trim_start_matches("{\"")
            .trim_end_matches("\"}")
            .replace("\":\"", ": ");
        println!(
            "{:<2} {:<40} {:>6} {:<26} {:<8} {}",
            i + 1,
            row.what,
            status,
            answer,
            if ran { "ran" } else { "-" },
            if ok {
                "yes".to_string()
            } else {
                format!(
                    "NO (expected {} / {})",
                    row.expect_status,
                    if row.expect_handler { "ran" } else { "-" }
                )
            }
        );
    }
    println!(
        "\nhandler calls: {}; JWKS fetches: {}",
        handled.lock().unwrap().len(),
        jwks.fetch_count()
    );
    let _ = stop.send(());
    let _ = server.await;
    if failures > 0 {
        println!("{failures} row(s) did not behave as expected");
        std::process::exit(1);
    }
    println!("every row behaved as expected");
}
