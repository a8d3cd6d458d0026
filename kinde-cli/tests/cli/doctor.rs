//! `doctor`: the JWKS checks against working and broken issuers, and the probes against our
//! receiver (refuses them all, runs no handler) and one that decodes without verifying (fails).

use std::collections::HashSet;

use kinde_core::testing::{ServerBehaviour, TestIssuer, TestKey};

use crate::common::{self, run, IssuerProcess, NaiveReceiver, OurReceiver};

const JWKS_CHECKS: [&str; 6] = [
    "issuer",
    "jwks-reachable",
    "jwks-no-redirect",
    "jwks-status",
    "jwks-content-type",
    "jwks-keys",
];
const PROBES: [&str; 7] = [
    "probe-alg-none",
    "probe-hs256-public-key",
    "probe-foreign-key",
    "probe-unknown-kid",
    "probe-truncated-signature",
    "probe-garbage",
    "probe-get",
];

/// The check name of a `PASS name …` / `FAIL name: …` line.
fn name(line: &str) -> &str {
    let rest = line
        .strip_prefix("PASS ")
        .or_else(|| line.strip_prefix("FAIL "))
        .unwrap_or_else(|| panic!("not a PASS/FAIL line: {line:?}"));
    rest.split([' ', ':']).next().unwrap()
}

fn names<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines.iter().map(|l| name(l)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_receiver_passes_every_check_and_probe_and_runs_no_handler() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let issuer = IssuerProcess::start(dir.path(), &[]).await;
    let receiver = OurReceiver::start(&issuer.url).await;
    let out = run(&[
        "doctor",
        "--issuer",
        &issuer.url,
        "--endpoint",
        &receiver.webhook_url(),
    ])
    .await;
    out.expect_code(0);
    let lines = out.lines();
    let expected: Vec<&str> = JWKS_CHECKS.iter().chain(PROBES.iter()).copied().collect();
    assert_eq!(names(&lines), expected, "{out:#?}");
    assert!(lines.iter().all(|l| l.starts_with("PASS ")), "{out:#?}");
    assert!(
        lines[0].contains("loopback"),
        "a loopback http issuer is no failure: {}",
        lines[0]
    );
    assert!(lines[5].contains("1 usable RS256 key"), "{}", lines[5]);
    // Each probe was refused for the reason a verifying receiver gives.
    for (probe, answer) in [
        ("probe-alg-none", "(40"),
        ("probe-hs256-public-key", "(401 unsupported_algorithm)"),
        ("probe-foreign-key", "(401 invalid_signature)"),
        ("probe-truncated-signature", "(40"),
        ("probe-garbage", "(400 malformed_token)"),
        ("probe-get", "(405 method_not_allowed)"),
    ] {
        let line = lines.iter().find(|l| name(l) == probe).unwrap();
        assert!(line.contains(answer), "{line} should contain {answer}");
    }
    assert!(
        receiver.handled().is_empty(),
        "a probe ran a handler: {:?}",
        receiver.handled()
    );
    // Without --endpoint: the JWKS checks only.
    let out = run(&["doctor", &format!("--issuer={}", issuer.url)]).await;
    out.expect_code(0);
    assert_eq!(names(&out.lines()), JWKS_CHECKS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_does_not_verify_fails_every_probe() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let issuer = IssuerProcess::start(dir.path(), &[]).await;
    let naive = NaiveReceiver::start().await;
    let out = run(&[
        "doctor",
        "--issuer",
        &issuer.url,
        "--endpoint",
        &naive.webhook_url(),
    ])
    .await;
    out.expect_code(1);
    let lines = out.lines();
    assert_eq!(lines.len(), JWKS_CHECKS.len() + PROBES.len(), "{out:#?}");
    for line in &lines[..JWKS_CHECKS.len()] {
        assert!(line.starts_with("PASS "), "{line}");
    }
    for (line, probe) in lines[JWKS_CHECKS.len()..].iter().zip(PROBES) {
        assert!(
            line.starts_with(&format!("FAIL {probe}: answered 200")),
            "{line}"
        );
        assert!(line.contains("accepts forged events"), "{line}");
    }

    // What it received: six POSTs of unique events (nothing a correct receiver would run) and a GET.
    let seen = naive.seen();
    assert_eq!(seen.len(), PROBES.len());
    assert_eq!(seen.iter().filter(|s| s.method == "POST").count(), 6);
    assert_eq!(seen.last().unwrap().method, "GET");
    let kid = issuer.kids().await.remove(0);
    let mut event_ids = HashSet::new();
    let mut webhook_ids = HashSet::new();
    for s in seen.iter().filter(|s| s.method == "POST") {
        assert_eq!(s.content_type.as_deref(), Some("application/jwt"));
        assert!(webhook_ids.insert(s.webhook_id.clone().unwrap()));
        let decoded = run(&["decode", &s.body]).await;
        if decoded.code != 0 {
            continue; // the garbage probe
        }
        let d = decoded.json();
        assert!(event_ids.insert(d["payload"]["event_id"].as_str().unwrap().to_owned()));
        match d["header"]["alg"].as_str().unwrap() {
            "none" => assert!(s.body.ends_with('.'), "unsigned: {}", s.body),
            "HS256" => assert_eq!(d["header"]["kid"], kid.as_str()),
            "RS256" => {}
            other => panic!("unexpected alg {other}"),
        }
    }
    assert_eq!(
        event_ids.len(),
        5,
        "alg none, HS256, foreign key, unknown kid, truncated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_cannot_fetch_keys_passes_with_a_note() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let issuer = IssuerProcess::start(dir.path(), &[]).await;
    // Our receiver, pointed at an issuer that is down: whatever needs a key is answered 503.
    let receiver = OurReceiver::start(&common::dead_url()).await;
    let out = run(&[
        "doctor",
        "--issuer",
        &issuer.url,
        "--endpoint",
        &receiver.webhook_url(),
    ])
    .await;
    out.expect_code(0);
    let foreign = out
        .lines()
        .into_iter()
        .find(|l| name(l) == "probe-foreign-key")
        .unwrap();
    assert!(
        foreign.starts_with("PASS probe-foreign-key (503 jwks_unavailable"),
        "{foreign}"
    );
    assert!(foreign.contains("try again later"), "{foreign}");
    assert!(receiver.handled().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_issuers_fail_the_check_that_explains_them() {
    let naive = NaiveReceiver::start().await;
    // Nothing listening: unreachable; the probes that need the issuer's key are not run.
    let out = run(&[
        "doctor",
        "--issuer",
        &common::dead_url(),
        "--endpoint",
        &naive.webhook_url(),
    ])
    .await;
    out.expect_code(1);
    let lines = out.lines();
    assert_eq!(names(&lines[..2]), ["issuer", "jwks-reachable"], "{out:#?}");
    assert!(
        lines[1].starts_with("FAIL jwks-reachable: no answer from"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("kinde-webhooks issuer"),
        "a loopback issuer: {}",
        lines[1]
    );
    assert_eq!(names(&lines[2..]), PROBES, "{out:#?}");
    for line in &lines[2..] {
        assert!(line.starts_with("FAIL "), "{line}");
    }
    let hs = lines
        .iter()
        .find(|l| name(l) == "probe-hs256-public-key")
        .unwrap();
    assert!(hs.contains("not run"), "{hs}");

    // Served by the test kit's JWKS server, misbehaving on purpose.
    let kit = TestIssuer::new();
    let jwks = kit.serve().await;
    let url = jwks.url();
    let doctor = || {
        let url = url.clone();
        async move { run(&["doctor", "--issuer", &url]).await }
    };
    let failing = |out: &common::Output, check: &str| -> String {
        assert_eq!(out.code, 1, "{out:#?}");
        let line = out.lines().last().unwrap().to_string();
        assert!(line.starts_with(&format!("FAIL {check}: ")), "{out:#?}");
        line
    };

    jwks.set_behaviour(ServerBehaviour::Status(403));
    let line = failing(&doctor().await, "jwks-status");
    assert!(
        line.contains("403") && line.contains("region subdomain"),
        "{line}"
    );
    assert!(
        line.contains("credentials") && line.contains("Authorization"),
        "{line}"
    );

    jwks.set_behaviour(ServerBehaviour::Status(404));
    assert!(failing(&doctor().await, "jwks-status").contains("404"));

    jwks.set_behaviour(ServerBehaviour::Redirect(
        "https://elsewhere.example/.well-known/jwks".into(),
    ));
    let line = failing(&doctor().await, "jwks-no-redirect");
    assert!(
        line.contains("302") && line.contains("https://elsewhere.example"),
        "{line}"
    );

    jwks.set_behaviour(ServerBehaviour::Body(
        r#"{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}"#.into(),
    ));
    let line = failing(&doctor().await, "jwks-keys");
    assert!(line.contains("no usable RS256"), "{line}");

    jwks.set_behaviour(ServerBehaviour::Body("<html>login</html>".into()));
    let line = failing(&doctor().await, "jwks-keys");
    assert!(line.contains("not a JWKS document"), "{line}");

    jwks.set_behaviour(ServerBehaviour::Serve);
    doctor().await.expect_code(0);

    // An HTML page where the JWKS should be.
    let html = common::serve(axum::Router::new().route(
        "/.well-known/jwks",
        axum::routing::get(|| async { axum::response::Html("<html>sign in</html>") }),
    ))
    .await;
    let out = run(&["doctor", "--issuer", &html.url("")]).await;
    out.expect_code(1);
    let ct = out
        .lines()
        .into_iter()
        .find(|l| name(l) == "jwks-content-type")
        .unwrap();
    assert!(
        ct.starts_with("FAIL jwks-content-type: ") && ct.contains("text/html"),
        "{ct}"
    );

    // Plain http to a public host is refused up front.
    let out = run(&["doctor", "--issuer", "http://acme.kinde.com"]).await;
    out.expect_code(1);
    assert_eq!(out.lines().len(), 1, "{out:#?}");
    assert!(out.lines()[0].starts_with("FAIL issuer: "), "{out:#?}");
}
