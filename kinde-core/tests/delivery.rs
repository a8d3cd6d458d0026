//! Verified deliveries: dispatch, deduplication, failures and retries, configuration checks.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_answer, Harness};
use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{ManualClock, TestEvent};
use kinde_core::State;
use kinde_core::{BuildError, ReplayWindow, Webhooks};
use serde_json::json;
use time::OffsetDateTime;

#[tokio::test]
async fn a_valid_event_is_handled_once() {
    let h = Harness::new().await;
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = h.issuer.sign(&ev.into_claims());
    let resp = h.send_with_id(&token, "msg_1").await;
    assert_answer(&resp, 200, "handled");
    assert_eq!(resp.body(), r#"{"status":"handled"}"#);
    assert_eq!(h.calls.ids(), vec![id.clone()]);
    // The same token again, and under a new webhook-id: the signed event_id is the key.
    assert_answer(&h.send_with_id(&token, "msg_1").await, 200, "duplicate");
    assert_answer(&h.send_with_id(&token, "msg_2").await, 200, "duplicate");
    assert_answer(&h.send(&token).await, 200, "duplicate");
    // A new token for the same event id (Kinde re-signing a retry) is a duplicate too.
    let resigned = h.issuer.sign(
        &TestEvent::sample("user.created")
            .event_id(&id)
            .into_claims(),
    );
    assert_answer(&h.send(&resigned).await, 200, "duplicate");
    assert_eq!(h.calls.count(), 1);
    assert_eq!(h.server.fetch_count(), 1);
}

#[tokio::test]
async fn every_documented_type_reaches_its_handler_or_the_fallback() {
    let h = Harness::new().await;
    for ty in kinde_core::event::KNOWN_EVENT_TYPES {
        let token = h.issuer.sign(&TestEvent::sample(ty).into_claims());
        assert_answer(&h.send(&token).await, 200, "handled");
    }
    let types: Vec<String> = h
        .calls
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(types, kinde_core::event::KNOWN_EVENT_TYPES.to_vec());
}

#[tokio::test]
async fn unknown_types_go_to_the_fallback_with_raw_data() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let issuer = kinde_core::testing::TestIssuer::new();
    let server = issuer.serve().await;
    let webhooks = Webhooks::builder()
        .issuer(server.url())
        .state(seen.clone())
        .fallback(
            async |State(seen): State<Arc<std::sync::Mutex<Option<kinde_core::Event>>>>,
                   e: kinde_core::Event| {
                *seen.lock().unwrap() = Some(e);
            },
        )
        .build()
        .unwrap();
    let ev = TestEvent::raw(
        "customer.plan_assigned",
        json!({"customer_id": "c1", "plan": {"code": "pro"}}),
    )
    .claim("ip_address", json!("203.0.113.9"));
    let resp = webhooks
        .handle(&http::HeaderMap::new(), h_sign(&issuer, ev).as_bytes())
        .await;
    assert_eq!(resp.status(), 200);
    let e = seen.lock().unwrap().take().unwrap();
    assert_eq!(e.meta.event_type, "customer.plan_assigned");
    assert_eq!(e.meta.ip_address.as_deref(), Some("203.0.113.9"));
    assert_eq!(e.data["plan"]["code"], "pro");
}

fn h_sign(issuer: &kinde_core::testing::TestIssuer, ev: TestEvent) -> String {
    issuer.sign(&ev.into_claims())
}

#[tokio::test]
async fn no_handler_and_no_fallback_is_200_without_touching_the_store() {
    let issuer = kinde_core::testing::TestIssuer::new();
    let server = issuer.serve().await;
    let store = Arc::new(common::CountingStore::default());
    let webhooks = Webhooks::builder()
        .issuer(server.url())
        .store(store.clone())
        .on(|_: Event<UserCreated>| async {})
        .build()
        .unwrap();
    let token = issuer.sign(&TestEvent::sample("role.created").into_claims());
    let resp = webhooks
        .handle(&http::HeaderMap::new(), token.as_bytes())
        .await;
    assert_answer(&resp, 200, "ignored");
    assert_eq!(store.calls(), 0);
}

#[tokio::test]
async fn a_typed_handler_whose_data_does_not_match_is_500_and_never_dropped() {
    let h = Harness::new().await;
    for data in [
        json!({"user": {"email": "no id"}}),
        json!([1, 2]),
        json!("text"),
    ] {
        let broken = TestEvent::raw("user.created", data);
        let token = h.issuer.sign(&broken.into_claims());
        // Claimed, not handled, released: each retry is a new attempt, never a 409.
        for _ in 0..2 {
            assert_answer(&h.send(&token).await, 500, "unparseable_event");
        }
    }
    assert_eq!(h.calls.count(), 0);
    assert_eq!(h.store.calls(), 3 * 2 * 2, "claim + release per attempt");
}

#[tokio::test]
async fn untyped_handlers_get_whatever_data_a_documented_type_carries() {
    // Only the fallback: a user.created without an id, or whose data is not even an object,
    // still reaches it (raw), and a typed parse is its own choice.
    let h = Harness::with(|b| b).await;
    let issuer = &h.issuer;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let webhooks = Webhooks::builder()
        .issuer(h.server.url())
        .state(seen.clone())
        .on_type(
            "user.created",
            async |State(s): State<Arc<std::sync::Mutex<Vec<serde_json::Value>>>>,
                   e: kinde_core::Event| {
                let typed = e.parse::<UserCreated>().is_ok();
                s.lock()
                    .unwrap()
                    .push(json!({"data": e.data, "typed": typed}));
            },
        )
        .build()
        .unwrap();
    for data in [
        json!({"user": {"email": "no id"}}),
        json!([1]),
        json!({"user": {"id": "kp_1"}}),
    ] {
        let token = issuer.sign(&TestEvent::raw("user.created", data).into_claims());
        let resp = webhooks
            .handle(&http::HeaderMap::new(), token.as_bytes())
            .await;
        assert_answer(&resp, 200, "handled");
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            json!({"data": {"user": {"email": "no id"}}, "typed": false}),
            json!({"data": [1], "typed": false}),
            json!({"data": {"user": {"id": "kp_1"}}, "typed": true}),
        ]
    );
}

#[tokio::test]
async fn a_failed_handler_releases_the_claim_and_the_retry_runs_it_again() {
    let h = Harness::new().await;
    h.calls.fail_next.store(1, Ordering::SeqCst);
    let token = h
        .issuer
        .sign(&TestEvent::sample("user.created").into_claims());
    assert_answer(&h.send(&token).await, 500, "handler_failed");
    assert_answer(&h.send(&token).await, 200, "handled");
    assert_answer(&h.send(&token).await, 200, "duplicate");
    assert_eq!(h.calls.count(), 2);
}

#[tokio::test]
async fn a_panicking_or_slow_handler_is_500_and_released() {
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = attempts.clone();
    let issuer = kinde_core::testing::TestIssuer::new();
    let server = issuer.serve().await;
    let webhooks = Webhooks::builder()
        .issuer(server.url())
        .handler_timeout(Duration::from_millis(100))
        .processing_ttl(Duration::from_secs(5))
        .on(move |_: Event<UserCreated>| {
            let n = a.fetch_add(1, Ordering::SeqCst);
            // The synchronous part of the handler, before its future exists.
            assert_ne!(n, 0, "a bug before the first await");
            async move {
                match n {
                    1 => panic!("a bug inside the future"),
                    2 => tokio::time::sleep(Duration::from_secs(10)).await,
                    _ => {}
                }
            }
        })
        .build()
        .unwrap();
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let headers = http::HeaderMap::new();
    let send = || webhooks.handle(&headers, token.as_bytes());
    assert_answer(&send().await, 500, "handler_failed"); // panic before the future
    assert_answer(&send().await, 500, "handler_failed"); // panic inside it
    assert_answer(&send().await, 500, "handler_failed"); // timeout
                                                         // Each failure released its claim: the next delivery runs, and then it is a duplicate.
    assert_answer(&send().await, 200, "handled");
    assert_answer(&send().await, 200, "duplicate");
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_concurrent_duplicate_is_409_and_succeeds_on_retry() {
    let started = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(tokio::sync::Notify::new());
    let (s, g) = (started.clone(), gate.clone());
    let issuer = kinde_core::testing::TestIssuer::new();
    let server = issuer.serve().await;
    let webhooks = Webhooks::builder()
        .issuer(server.url())
        .on(move |_: Event<UserCreated>| {
            let (s, g) = (s.clone(), g.clone());
            async move {
                s.notify_one();
                g.notified().await;
            }
        })
        .build()
        .unwrap();
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let first = {
        let (w, t) = (webhooks.clone(), token.clone());
        tokio::spawn(async move { w.handle(&http::HeaderMap::new(), t.as_bytes()).await })
    };
    // Once the first delivery's handler runs, it holds the claim.
    started.notified().await;
    let second = webhooks
        .handle(&http::HeaderMap::new(), token.as_bytes())
        .await;
    assert_answer(&second, 409, "in_progress");
    gate.notify_one();
    assert_answer(&first.await.unwrap(), 200, "handled");
    assert_answer(
        &webhooks
            .handle(&http::HeaderMap::new(), token.as_bytes())
            .await,
        200,
        "duplicate",
    );
}

#[tokio::test]
async fn a_handled_event_whose_completion_fails_is_200_and_never_runs_twice_silently() {
    let h = Harness::new().await;
    h.store.fail_complete.store(true, Ordering::SeqCst);
    let token = h
        .issuer
        .sign(&TestEvent::sample("user.created").into_claims());
    // The work is done: 200, or Kinde would retry and repeat it.
    assert_answer(&h.send(&token).await, 200, "handled");
    // The claim is still held (in progress) while the completion is retried in the background:
    // a retry now is a 409, never a second run.
    assert_answer(&h.send(&token).await, 409, "in_progress");
    // Once the store takes the completion, the event is a duplicate.
    h.store.fail_complete.store(false, Ordering::SeqCst);
    let answer = common::eventually(Duration::from_secs(30), || async {
        let a = h.send(&token).await;
        (a.status() == 200).then_some(a)
    })
    .await;
    assert_answer(&answer, 200, "duplicate");
    assert_eq!(h.calls.count(), 1);
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_503_and_runs_nothing() {
    let h = Harness::new().await;
    h.store.fail_all.store(true, Ordering::SeqCst);
    let token = h
        .issuer
        .sign(&TestEvent::sample("user.created").into_claims());
    assert_answer(&h.send(&token).await, 503, "store_unavailable");
    assert_eq!(h.calls.count(), 0);
    h.store.fail_all.store(false, Ordering::SeqCst);
    assert_answer(&h.send(&token).await, 200, "handled");
}

#[tokio::test]
async fn the_replay_window_follows_the_injected_clock() {
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let c = clock.clone();
    let h = Harness::with(move |b| {
        b.clock(c)
            .replay_window(ReplayWindow::default().max_age(Duration::from_secs(3600)))
    })
    .await;
    let token = h
        .issuer
        .sign(&TestEvent::sample("user.created").into_claims());
    clock.advance(Duration::from_secs(3601));
    assert_answer(&h.send(&token).await, 401, "stale_event");
    clock.set(OffsetDateTime::now_utc() - time::Duration::minutes(10));
    assert_answer(&h.send(&token).await, 401, "future_event");
    clock.set(OffsetDateTime::now_utc());
    assert_answer(&h.send(&token).await, 200, "handled");
}

#[tokio::test]
async fn accepted_timestamp_forms() {
    let h = Harness::new().await;
    let now = OffsetDateTime::now_utc();
    let rfc = now
        .to_offset(time::UtcOffset::from_hms(10, 0, 0).unwrap())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let hour_offset = rfc.strip_suffix(":00").unwrap().to_owned();
    assert!(hour_offset.ends_with("+10"), "{hour_offset}");
    for ts in [json!(hour_offset), json!(now.unix_timestamp())] {
        let ev = TestEvent::sample("user.created").claim("timestamp", ts.clone());
        assert_answer(
            &h.send(h.issuer.sign(&ev.into_claims())).await,
            200,
            "handled",
        );
    }
}

#[test]
fn invalid_configurations_fail_at_build_time() {
    let err = Webhooks::builder().build().unwrap_err();
    assert!(matches!(err, BuildError::NoKeySource), "{err}");
    let err = Webhooks::builder()
        .issuer("http://acme.kinde.com")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Issuer(_)), "{err}");
    let err = Webhooks::builder()
        .issuer("acme.kinde.com")
        .done_ttl(Duration::from_secs(3600))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, BuildError::DoneTtlShorterThanWindow { .. }),
        "{err}"
    );
    let err = Webhooks::builder()
        .issuer("acme.kinde.com")
        .handler_timeout(Duration::from_secs(300))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, BuildError::HandlerTimeoutTooLong { .. }),
        "{err}"
    );
    let err = Webhooks::builder()
        .issuer("acme.kinde.com")
        .body_limit(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Zero(_)), "{err}");
    let err = Webhooks::builder()
        .issuer("acme.kinde.com")
        .path("kinde")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidPath(_)), "{err}");
    let err = Webhooks::builder()
        .issuer("acme.kinde.com")
        .on(|_: Event<UserCreated>| async {})
        .on_type("user.created", |_: kinde_core::Event| async {})
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("user.created"), "{err}");
}

/// Which backend verified, seen from the backends themselves: each one's own verify call
/// counts (`testing::verifications`). Run in each feature configuration of `scripts/test.sh`
/// (aws-lc-rs, rust-crypto alone, both); `crypto_backend()` must name the one that moved.
#[tokio::test]
async fn the_backend_crypto_backend_names_is_the_one_that_verified() {
    let h = Harness::new().await;
    let tokens: Vec<String> = (0..3)
        .map(|_| {
            h.issuer
                .sign(&TestEvent::sample("user.created").into_claims())
        })
        .collect();
    let before = kinde_core::testing::verifications();
    for token in &tokens {
        assert_answer(&h.send(token).await, 200, "handled");
    }
    let after = kinde_core::testing::verifications();
    // Other tests of this binary verify in parallel: at least our three, none elsewhere.
    let (aws, rust) = (
        after.aws_lc_rs - before.aws_lc_rs,
        after.rust_crypto - before.rust_crypto,
    );
    let expected = if cfg!(feature = "aws-lc-rs") {
        assert!(aws >= 3, "aws-lc-rs verified {aws}");
        // With both features on, the RustCrypto backend is never used.
        assert_eq!(after.rust_crypto, 0);
        "aws-lc-rs"
    } else {
        assert!(rust >= 3, "rust-crypto verified {rust}");
        assert_eq!(after.aws_lc_rs, 0);
        "rust-crypto"
    };
    assert_eq!(kinde_core::crypto_backend(), expected);
    eprintln!(
        "verified by {} (rust-crypto feature: {})",
        kinde_core::crypto_backend(),
        cfg!(feature = "rust-crypto")
    );
}

#[tokio::test]
async fn a_caller_that_goes_away_mid_handler_does_not_cancel_or_strand_the_work() {
    // Bounded as a whole: whatever goes wrong, this test fails instead of hanging.
    tokio::time::timeout(Duration::from_secs(60), async {
        let running = Arc::new(tokio::sync::Notify::new());
        let gate = Arc::new(tokio::sync::Notify::new());
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, g, f) = (running.clone(), gate.clone(), finished.clone());
        let issuer = kinde_core::testing::TestIssuer::new();
        let server = issuer.serve().await;
        let webhooks = Webhooks::builder()
            .issuer(server.url())
            .on(move |_: Event<UserCreated>| {
                let (r, g, f) = (r.clone(), g.clone(), f.clone());
                async move {
                    r.notify_one();
                    g.notified().await;
                    f.store(true, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap();
        let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
        let headers = http::HeaderMap::new();
        // The client hangs up once the handler runs: the delivery's future is dropped then.
        tokio::select! {
            answer = webhooks.handle(&headers, token.as_bytes()) => {
                panic!("answered before the handler was released: {:?}", answer.body())
            }
            _ = running.notified() => {}
        }
        assert_answer(
            &webhooks.handle(&headers, token.as_bytes()).await,
            409,
            "in_progress",
        );
        gate.notify_one();
        // The detached rest completes the claim: the retry is a duplicate, not a second run.
        let answer = common::eventually(Duration::from_secs(30), || async {
            let a = webhooks.handle(&headers, token.as_bytes()).await;
            (a.status() == 200).then_some(a)
        })
        .await;
        assert_answer(&answer, 200, "duplicate");
        assert!(finished.load(Ordering::SeqCst));
    })
    .await
    .expect("the test finished in time");
}
