//! The receiver pipeline over the single server: exactly once, failed handlers, a crashed
//! receiver's claim, Redis stopping mid-stream.

use std::sync::Arc;
use std::time::Duration;

use kinde_core::store::Fenced;
use kinde_core::testing::{TestEvent, TestIssuer};
use redis::AsyncCommands;
use tokio::time::Instant;

use crate::redis_common::{self, answer, deliver, get, started, store, Counter, LONG};
use crate::{exactly_once_across_receivers, Unavailable};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_two_receivers_sharing_redis() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    exactly_once_across_receivers(200, Unavailable::Never, || store(&redis.url, &prefix)).await;
    let mut raw = redis_common::raw(&redis.url).await;
    let keys: Vec<String> = raw.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(keys.len(), 200);
}

#[tokio::test]
async fn a_failed_handler_releases_the_claim_and_the_retry_runs_it() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    counter
        .fail_next
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let webhooks = redis_common::receiver(jwks.url(), store(&redis.url, &prefix), &counter, |b| b);
    let mut raw = redis_common::raw(&redis.url).await;
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());

    assert_eq!(
        answer(&deliver(&webhooks, &token).await),
        (500, "handler_failed")
    );
    assert_eq!(
        get(&mut raw, &format!("{prefix}{id}")).await,
        None,
        "released"
    );
    assert_eq!(answer(&deliver(&webhooks, &token).await), (200, "handled"));
    assert_eq!(
        get(&mut raw, &format!("{prefix}{id}")).await.as_deref(),
        Some("d")
    );
    assert_eq!(
        answer(&deliver(&webhooks, &token).await),
        (200, "duplicate")
    );
    assert_eq!(counter.runs(&id), 2);
}

/// A receiver claimed an event, then died mid-handler. While its claim lives, deliveries get
/// 409 and run nothing; once Redis expires it, the next delivery is handled, and the dead
/// receiver's late completion is fenced off.
///
/// No margin a loaded machine can miss: the 409 is checked against a claim that lives an
/// hour, and the expiry is waited for (the key gone) rather than slept for.
#[tokio::test]
async fn a_claim_left_by_a_crashed_receiver_expires_and_the_next_delivery_is_handled() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    let webhooks = redis_common::receiver(jwks.url(), store(&redis.url, &prefix), &counter, |b| b);
    let mut raw = redis_common::raw(&redis.url).await;
    let dead = store(&redis.url, &prefix);
    dead.ping().await.unwrap();

    // Held: a claim that outlives the test.
    let held = TestEvent::sample("user.created");
    let held_id = held.id().to_owned();
    let held_token = issuer.sign(&held.into_claims());
    started(redis_common::claim(&dead, &held_id, LONG).await.unwrap());
    assert_eq!(
        answer(&deliver(&webhooks, &held_token).await),
        (409, "in_progress")
    );
    assert_eq!(counter.runs(&held_id), 0);

    // Expired: a claim with a short processing TTL, which Redis drops by itself.
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());
    let key = format!("{prefix}{id}");
    let dead_token = started(
        redis_common::claim(&dead, &id, Duration::from_millis(300))
            .await
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exists: bool = raw.exists(&key).await.unwrap();
        if !exists {
            break;
        }
        assert!(Instant::now() < deadline, "the claim never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer(&deliver(&webhooks, &token).await), (200, "handled"));
    assert_eq!(counter.runs(&id), 1);

    // The dead receiver's late completion (or release) is fenced off and changes nothing.
    assert_eq!(
        redis_common::complete(&dead, &id, &dead_token, LONG)
            .await
            .unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        redis_common::release(&dead, &id, &dead_token)
            .await
            .unwrap(),
        Fenced::Superseded
    );
    assert_eq!(get(&mut raw, &key).await.as_deref(), Some("d"));
    assert_eq!(
        answer(&deliver(&webhooks, &token).await),
        (200, "duplicate")
    );
    assert_eq!(counter.runs(&id), 1);
}

/// Redis stops during a stream of deliveries: those answer 503 and run nothing; once it is back
/// (same port, same data), the retried deliveries are each handled exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_stream_then_back_loses_nothing_and_doubles_nothing() {
    let Some(mut redis) = redis_common::restartable().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    // Generous bounds: while Redis is down, connections are refused at once anyway.
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    // A short processing TTL: a claim whose reply was lost in the shutdown blocks retries (409)
    // only this long.
    let tune = |b: kinde_core::WebhooksBuilder| {
        b.processing_ttl(Duration::from_secs(2))
            .handler_timeout(Duration::from_secs(1))
    };
    let webhooks = redis_common::receiver(jwks.url(), store(&redis.url, &prefix), &counter, tune);

    let events: Vec<(String, String)> = (0..100)
        .map(|_| {
            let ev = TestEvent::sample("user.created");
            (ev.id().to_owned(), issuer.sign(&ev.into_claims()))
        })
        .collect();

    // The stream: one delivery every 20 ms, in the background.
    let stream = {
        let (webhooks, counter, events) = (webhooks.clone(), counter.clone(), events.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for (id, token) in &events {
                let a = answer(&deliver(&webhooks, token).await);
                if a.0 == 503 {
                    // Refused while Redis is down: the handler did not run.
                    assert_eq!(counter.runs(id), 0, "{id} ran but was answered 503");
                }
                answers.push(a);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    };
    // Stop Redis once the stream is under way, and start it again a while later.
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter.total() < 10 {
        assert!(Instant::now() < deadline, "the stream does not get handled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    redis.stop().await;
    // A receiver started now, while Redis is down, answers 503 (the connection is refused).
    let late_counter = Arc::new(Counter::default());
    let late = redis_common::receiver(jwks.url(), store(&redis.url, &prefix), &late_counter, tune);
    let probe = issuer.sign(&TestEvent::sample("user.created").into_claims());
    assert_eq!(
        answer(&deliver(&late, &probe).await),
        (503, "store_unavailable")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.start().await;

    let answers = stream.await.unwrap();
    let refused = answers.iter().filter(|a| a.0 == 503).count();
    eprintln!(
        "stream of {}: {} handled, {refused} refused with 503 while Redis was down",
        answers.len(),
        answers.iter().filter(|a| **a == (200, "handled")).count()
    );
    assert!(refused > 0, "no delivery met the outage: {answers:?}");
    for a in &answers {
        assert!(
            matches!(a, (200, "handled") | (503, "store_unavailable")),
            "{a:?}"
        );
    }

    // Kinde retries what was not acknowledged (bounded, with a pause between rounds).
    let mut pending: Vec<usize> = (0..events.len()).filter(|&i| answers[i].0 != 200).collect();
    for _ in 0..100 {
        if pending.is_empty() {
            break;
        }
        let mut still = Vec::new();
        for i in pending {
            let a = answer(&deliver(&webhooks, &events[i].1).await);
            assert!(
                matches!(
                    a,
                    (200, "handled") | (503, "store_unavailable") | (409, "in_progress")
                ),
                "{a:?}"
            );
            if a.0 != 200 {
                still.push(i);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pending.is_empty(),
        "{} deliveries never settled",
        pending.len()
    );

    // Every event handled exactly once.
    for (id, _) in &events {
        assert_eq!(counter.runs(id), 1, "{id}");
    }
    assert_eq!(counter.total(), events.len());
    // The restarted server kept its data: events completed before the outage (the stream is
    // sequential, so the first 9 had completed when the 10th ran) are still known.
    let mut raw = redis_common::raw(&redis.url).await;
    for (id, token) in &events[..9] {
        assert_eq!(
            get(&mut raw, &format!("{prefix}{id}")).await.as_deref(),
            Some("d")
        );
        assert_eq!(answer(&deliver(&webhooks, token).await), (200, "duplicate"));
    }
    // The receiver built during the outage works now that Redis is back.
    assert_eq!(answer(&deliver(&late, &probe).await), (200, "handled"));
    assert_eq!(late_counter.total(), 1);
}
