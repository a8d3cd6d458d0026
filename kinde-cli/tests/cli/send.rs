//! `send`: deliveries as Kinde makes them, one `STATUS BODY` line each, exit 0 only if all 200.

use kinde_core::testing::TestKey;

use crate::common::{self, path, run, IssuerProcess, NaiveReceiver, OurReceiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_are_handled_once_then_duplicates_in_order() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let keys = path(dir.path());
    let issuer = IssuerProcess::start(dir.path(), &[]).await;
    let receiver = OurReceiver::start(&issuer.url).await;
    let to = receiver.webhook_url();

    let out = run(&[
        "send",
        "user.created",
        "--to",
        &to,
        "--keys",
        keys,
        "--event-id",
        "event_send_1",
        "--repeat",
        "3",
    ])
    .await;
    out.expect_code(0);
    assert_eq!(
        out.lines(),
        [
            r#"200 {"status":"handled"}"#,
            r#"200 {"status":"duplicate"}"#,
            r#"200 {"status":"duplicate"}"#
        ],
        "{out:#?}"
    );
    assert_eq!(receiver.handled(), ["handled user.created event_send_1"]);

    // A type without a typed handler goes to the receiver's fallback.
    let out = run(&[
        "send",
        "passkey.added",
        "--to",
        &to,
        "--keys",
        keys,
        "--event-id=event_send_2",
    ])
    .await;
    out.expect_code(0);
    assert_eq!(out.lines(), [r#"200 {"status":"handled"}"#]);
    assert_eq!(
        receiver.handled().last().unwrap(),
        "handled passkey.added event_send_2"
    );

    // A stale event is refused: 401, exit 1, no handler.
    let out = run(&[
        "send",
        "user.deleted",
        "--to",
        &to,
        "--keys",
        keys,
        "--timestamp",
        "-49h",
        "--event-id",
        "event_send_3",
    ])
    .await;
    out.expect_code(1);
    assert_eq!(out.lines(), [r#"401 {"error":"stale_event"}"#], "{out:#?}");
    // Signed by a key the issuer does not publish.
    let other = common::keys_dir(&[TestKey::secondary()]);
    let out = run(&[
        "send",
        "user.deleted",
        "--to",
        &to,
        "--keys",
        path(other.path()),
    ])
    .await;
    out.expect_code(1);
    // 401, or 503 while the receiver may not refetch its keys yet (it fetched them moments ago).
    assert!(
        [
            r#"401 {"error":"unknown_kid"}"#,
            r#"503 {"error":"kid_refetch_throttled"}"#
        ]
        .contains(&out.lines()[..].join("\n").as_str()),
        "{out:#?}"
    );
    // Not the webhook path: whatever the app answers, it is not 200.
    let out = run(&[
        "send",
        "user.deleted",
        "--to",
        &receiver.server.url("/elsewhere"),
        "--keys",
        keys,
    ])
    .await;
    out.expect_code(1);
    assert!(out.lines()[0].starts_with("404"), "{out:#?}");
    assert_eq!(receiver.handled().len(), 2, "{:?}", receiver.handled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_run_the_handler_once() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let issuer = IssuerProcess::start(dir.path(), &[]).await;
    let receiver = OurReceiver::start(&issuer.url).await;
    let out = run(&[
        "send",
        "user.updated",
        "--to",
        &receiver.webhook_url(),
        "--keys",
        path(dir.path()),
        "--event-id",
        "event_concurrent",
        "--repeat",
        "6",
        "--concurrency",
        "6",
    ])
    .await;
    let lines = out.lines();
    assert_eq!(lines.len(), 6, "{out:#?}");
    let handled = lines
        .iter()
        .filter(|l| **l == r#"200 {"status":"handled"}"#)
        .count();
    assert_eq!(handled, 1, "{out:#?}");
    for line in &lines {
        assert!(
            [
                r#"200 {"status":"handled"}"#,
                r#"200 {"status":"duplicate"}"#,
                r#"409 {"error":"in_progress"}"#
            ]
            .contains(line),
            "{line}"
        );
    }
    let all_200 = lines.iter().all(|l| l.starts_with("200 "));
    assert_eq!(out.code, if all_200 { 0 } else { 1 }, "{out:#?}");
    assert_eq!(
        receiver.handled(),
        ["handled user.updated event_concurrent"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_like_kinde_with_one_webhook_id_for_all_repeats() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let keys = path(dir.path());
    let naive = NaiveReceiver::start().await;
    let out = run(&[
        "send",
        "role.created",
        "--to",
        &naive.webhook_url(),
        "--keys",
        keys,
        "--repeat",
        "2",
    ])
    .await;
    out.expect_code(0);
    assert_eq!(out.lines(), ["200 ok", "200 ok"]);
    let seen = naive.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.content_type.as_deref(), Some("application/jwt"));
        assert_eq!(s.body, seen[0].body, "the same token");
    }
    let id = seen[0].webhook_id.clone().expect("a webhook-id header");
    assert!(id.starts_with("msg_") && id.len() > 10, "{id}");
    assert_eq!(
        seen[1].webhook_id.as_deref(),
        Some(id.as_str()),
        "the same on a repeat"
    );
    let decoded = run(&["decode", &seen[0].body]).await.json();
    assert_eq!(decoded["payload"]["type"], "role.created");

    // Given, it is sent as is; another send, another id.
    run(&[
        "send",
        "role.created",
        "--to",
        &naive.webhook_url(),
        "--keys",
        keys,
        "--webhook-id",
        "-wh-given",
    ])
    .await
    .expect_code(0);
    run(&[
        "send",
        "role.created",
        "--to",
        &naive.webhook_url(),
        "--keys",
        keys,
    ])
    .await
    .expect_code(0);
    let seen = naive.seen();
    assert_eq!(seen[2].webhook_id.as_deref(), Some("-wh-given"));
    assert_ne!(seen[3].webhook_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn no_answer_prints_000_and_exits_1() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let to = format!("{}/kinde/webhook", common::dead_url());
    let out = run(&[
        "send",
        "user.created",
        "--to",
        &to,
        "--keys",
        path(dir.path()),
        "--repeat",
        "2",
    ])
    .await;
    out.expect_code(1);
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{out:#?}");
    for line in lines {
        assert!(line.starts_with("000 no answer from "), "{line}");
    }
}
