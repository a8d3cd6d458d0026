//! `sign` (the claims and their overrides), `decode`, and usage errors.

use kinde_core::testing::{TestKey, SAMPLE_USER_ID};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::common::{self, path, run, run_with_stdin};

#[tokio::test]
async fn sign_prints_one_token_with_sample_data_and_decode_reads_it_back() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let keys = path(dir.path());
    let signed = run(&["sign", "user.created", "--keys", keys]).await;
    signed.expect_code(0);
    assert_eq!(signed.lines().len(), 1, "{signed:?}");
    let token = signed.stdout.trim();
    assert_eq!(token.split('.').count(), 3);

    let decoded = run(&["decode", token]).await;
    decoded.expect_code(0);
    assert!(
        decoded.stderr.contains("nothing was verified"),
        "{decoded:?}"
    );
    let doc = decoded.json();
    assert_eq!(doc.as_object().unwrap().len(), 2, "{doc}");
    assert_eq!(doc["header"]["alg"], "RS256");
    assert_eq!(doc["header"]["typ"], "JWT");
    let p = &doc["payload"];
    assert_eq!(p["type"], "user.created");
    assert_eq!(p["source"], "admin");
    assert_eq!(p["data"]["user"]["id"], SAMPLE_USER_ID);
    assert!(p["event_id"].as_str().unwrap().starts_with("event_"));
    let ts = OffsetDateTime::parse(p["timestamp"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!((OffsetDateTime::now_utc() - ts).abs() < time::Duration::minutes(10));

    // The same through standard input, with the newline a shell adds.
    let piped = run_with_stdin(&["decode"], Some(signed.stdout.as_bytes())).await;
    piped.expect_code(0);
    assert_eq!(piped.json(), doc);
    let dash = run_with_stdin(&["decode", "-"], Some(signed.stdout.as_bytes())).await;
    assert_eq!(dash.json(), doc);

    // Each run is a new event.
    let other = run(&["sign", "user.created", "--keys", keys]).await;
    let other = run(&["decode", other.stdout.trim()]).await.json();
    assert_ne!(other["payload"]["event_id"], p["event_id"]);
}

#[tokio::test]
async fn overrides_set_the_claims() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let keys = path(dir.path());
    let decode = |out: common::Output| async move {
        out.expect_code(0);
        run(&["decode", out.stdout.trim()]).await.json()["payload"].clone()
    };

    let p = decode(
        run(&[
            "sign",
            "user.updated",
            "--keys",
            keys,
            "--event-id",
            "event_fixed_1",
            "--timestamp=2024-04-26T17:42:58.089353-07:00",
            "--set",
            "data.user.email=ada@example.com",
            "--set=data.user.is_suspended=true",
            "--set",
            "data.user.phone=\"0123\"",
            "--set",
            "data.extra.nested.n=42",
            "--set",
            "ip_address=203.0.113.9",
        ])
        .await,
    )
    .await;
    assert_eq!(p["event_id"], "event_fixed_1");
    assert_eq!(p["timestamp"], "2024-04-26T17:42:58.089353-07:00");
    assert_eq!(p["data"]["user"]["email"], "ada@example.com");
    assert_eq!(p["data"]["user"]["is_suspended"], true);
    assert_eq!(p["data"]["user"]["phone"], "0123");
    assert_eq!(p["data"]["extra"], json!({"nested": {"n": 42}}));
    assert_eq!(
        p["data"]["user"]["id"], SAMPLE_USER_ID,
        "the rest of the sample stays"
    );
    assert_eq!(p["ip_address"], "203.0.113.9");

    // Relative times, written either way, may start with `-`.
    for args in [["--timestamp", "-49h"], ["--timestamp=-49h", ""]] {
        let mut argv = vec!["sign", "user.deleted", "--keys", keys];
        argv.extend(args.iter().filter(|a| !a.is_empty()));
        let p = decode(run(&argv).await).await;
        let ts = OffsetDateTime::parse(p["timestamp"].as_str().unwrap(), &Rfc3339).unwrap();
        let age = OffsetDateTime::now_utc() - ts;
        assert!(
            age > time::Duration::hours(48) && age < time::Duration::hours(50),
            "{age}"
        );
    }

    // Any other type: empty data unless given; --data from a file or stdin.
    let p = decode(run(&["sign", "passkey.added", "--keys", keys]).await).await;
    assert_eq!(p["type"], "passkey.added");
    assert_eq!(p["data"], json!({}));
    let tmp = tempfile::tempdir().unwrap();
    let data = common::file(
        tmp.path(),
        "data.json",
        r#"{"customer_id": "c_1", "plan": {"code": "pro"}}"#,
    );
    let p = decode(
        run(&[
            "sign",
            "customer.plan_assigned",
            "--keys",
            keys,
            "--data",
            path(&data),
            "--set",
            "data.plan.key=k",
        ])
        .await,
    )
    .await;
    assert_eq!(
        p["data"],
        json!({"customer_id": "c_1", "plan": {"code": "pro", "key": "k"}})
    );
    let out = run_with_stdin(
        &["sign", "x.y", "--keys", keys, "--data", "-"],
        Some(br#"{"from": "stdin"}"#),
    )
    .await;
    assert_eq!(decode(out).await["data"], json!({"from": "stdin"}));
}

#[tokio::test]
async fn bad_usage_and_unreadable_input_exit_2_with_nothing_on_stdout() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let keys = path(dir.path());
    let empty = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let not_json = common::file(tmp.path(), "bad.json", "{not json");
    let missing = tmp.path().join("missing.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "Usage"),
        (vec!["nonsense"], "nonsense"),
        (vec!["sign", "user.created"], "--keys"),
        (vec!["sign", "--keys", keys], "TYPE"),
        (
            vec![
                "sign",
                "user.created",
                "--keys",
                keys,
                "--timestamp",
                "soon",
            ],
            "-49h",
        ),
        (
            vec![
                "sign",
                "user.created",
                "--keys",
                keys,
                "--timestamp",
                "-49x",
            ],
            "-49h",
        ),
        (
            vec!["sign", "user.created", "--keys", keys, "--set", "novalue"],
            "PATH=VALUE",
        ),
        (
            vec![
                "sign",
                "user.created",
                "--keys",
                keys,
                "--set",
                "data.user.id.x=1",
            ],
            "not an object",
        ),
        (
            vec![
                "sign",
                "user.created",
                "--keys",
                keys,
                "--data",
                path(&not_json),
            ],
            "not JSON",
        ),
        (
            vec![
                "sign",
                "user.created",
                "--keys",
                keys,
                "--data",
                path(&missing),
            ],
            "missing.json",
        ),
        (
            vec!["sign", "user.created", "--keys", path(empty.path())],
            "no key",
        ),
        (
            vec!["sign", "user.created", "--keys", path(&missing)],
            "missing.json",
        ),
        (
            vec![
                "send",
                "user.created",
                "--keys",
                keys,
                "--to",
                "ftp://example.com/",
            ],
            "http",
        ),
        (
            vec![
                "send",
                "user.created",
                "--keys",
                keys,
                "--to",
                "http://127.0.0.1:1/",
                "--repeat",
                "0",
            ],
            "--repeat",
        ),
        (
            vec![
                "send",
                "user.created",
                "--keys",
                keys,
                "--to",
                "http://127.0.0.1:1/",
                "--concurrency=0",
            ],
            "--concurrency",
        ),
        (vec!["verify", "a.b.c"], "--issuer"),
        (
            vec!["verify", "a.b.c", "--issuer", "http://acme.kinde.com"],
            "https",
        ),
        (
            vec!["verify", "a.b.c", "--issuer", "x", "--at", "later"],
            "-49h",
        ),
        (vec!["doctor"], "--issuer"),
        (
            vec![
                "doctor",
                "--issuer",
                "acme.kinde.com",
                "--endpoint",
                "not a url",
            ],
            "URL",
        ),
        (vec!["decode", "not-a-token"], "not a JWS"),
        (vec!["decode", "e30.bm90IGpzb24.x"], "payload is not JSON"),
    ];
    for (args, says) in cases {
        let out = run(&args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:#?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:#?}");
        assert!(
            out.stderr.contains(says),
            "{args:?} should say {says:?}: {out:#?}"
        );
    }
    let garbage = run_with_stdin(&["decode"], Some(b"\xff\xfe")).await;
    garbage.expect_code(2);
    assert!(garbage.stdout.is_empty());

    // --help and --version are not errors.
    let help = run(&["--help"]).await;
    help.expect_code(0);
    for sub in ["issuer", "sign", "send", "decode", "verify", "doctor"] {
        assert!(help.stdout.contains(sub), "{sub}");
    }
    let sign_help = run(&["sign", "--help"]).await;
    sign_help.expect_code(0);
    assert!(sign_help.stdout.contains("newest"), "{}", sign_help.stdout);
    run(&["--version"]).await.expect_code(0);
}
