//! `verify`: kinde-core's verification against the issuer's live JWKS, through the binary.

use kinde_core::testing::{TestEvent, TestKey, SAMPLE_USER_ID};

use crate::common::{self, path, run, run_with_stdin, IssuerProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_prints_the_event_and_every_refusal_prints_its_code() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let keys = path(dir.path());
    let issuer = IssuerProcess::start(dir.path(), &[]).await;
    let iss_url = issuer.url.clone();
    let iss = iss_url.as_str();
    let sign = |extra: &'static [&'static str]| async move {
        let mut args = vec!["sign", "user.created", "--keys", keys];
        args.extend_from_slice(extra);
        let out = run(&args).await;
        out.expect_code(0);
        out.stdout.trim().to_owned()
    };

    let token = sign(&["--event-id", "event_verify_1"]).await;
    let ok = run(&["verify", &token, "--issuer", iss]).await;
    ok.expect_code(0);
    assert_eq!(ok.lines().len(), 1, "{ok:?}");
    let event = ok.json();
    let mut fields: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(fields, ["data", "event_id", "timestamp", "type"]);
    assert_eq!(event["event_id"], "event_verify_1");
    assert_eq!(event["type"], "user.created");
    assert_eq!(event["data"]["user"]["id"], SAMPLE_USER_ID);
    // From stdin too, with the issuer given as --issuer=VALUE.
    let piped = run_with_stdin(
        &["verify", &format!("--issuer={iss}")],
        Some(token.as_bytes()),
    )
    .await;
    piped.expect_code(0);
    assert_eq!(piped.json(), event);

    // The replay window, evaluated at --at.
    let refused = |out: common::Output, code: &str| {
        assert_eq!(out.code, 1, "{code}: {out:#?}");
        let lines = out.lines();
        assert_eq!(lines.len(), 2, "{out:#?}");
        assert_eq!(lines[0], code, "{out:#?}");
        assert!(
            lines[1].ends_with('.') && lines[1].len() > 20,
            "a sentence: {out:#?}"
        );
    };
    refused(
        run(&["verify", &token, "--issuer", iss, "--at", "+49h"]).await,
        "stale_event",
    );
    refused(
        run(&["verify", &token, "--issuer", iss, "--at=-10m"]).await,
        "future_event",
    );
    let old = sign(&["--timestamp", "-49h"]).await;
    refused(run(&["verify", &old, "--issuer", iss]).await, "stale_event");
    run(&["verify", &old, "--issuer", iss, "--at", "-49h"])
        .await
        .expect_code(0);
    let at = (time::OffsetDateTime::now_utc() - time::Duration::hours(49))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    run(&["verify", &old, "--issuer", iss, "--at", &at])
        .await
        .expect_code(0);

    // Forged: the issuer's kid, another key's signature.
    let kid = issuer.kids().await.remove(0);
    let claims = TestEvent::sample("user.created").into_claims();
    let forged = TestKey::attacker().with_kid(&kid).sign(&claims);
    refused(
        run(&["verify", &forged, "--issuer", iss]).await,
        "invalid_signature",
    );
    // A key the issuer does not publish.
    let other_dir = common::keys_dir(&[TestKey::secondary()]);
    let foreign = run(&["sign", "user.created", "--keys", path(other_dir.path())]).await;
    refused(
        run(&["verify", foreign.stdout.trim(), "--issuer", iss]).await,
        "unknown_kid",
    );
    // The tenant's key, but an access token's shape.
    let access = sign(&["--set", "aud=[\"https://api.example.com\"]"]).await;
    refused(
        run(&["verify", &access, "--issuer", iss]).await,
        "wrong_token_kind",
    );
    refused(
        run(&["verify", "garbage", "--issuer", iss]).await,
        "malformed_token",
    );
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let hs256 = format!(
        "{}.{}.{}",
        b64(&serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string()),
        b64(&claims.to_string()),
        b64("not a signature")
    );
    refused(
        run(&["verify", &hs256, "--issuer", iss]).await,
        "unsupported_algorithm",
    );

    // The issuer gone: the keys cannot be fetched, nothing is decided.
    drop(issuer);
    let down = run(&["verify", &token, "--issuer", iss]).await;
    refused(down, "jwks_unavailable");
    refused(
        run(&["verify", &token, "--issuer", &common::dead_url()]).await,
        "jwks_unavailable",
    );
}
