//! The background re-drive of parked events (`Redrive`), with the memory store: back-off from
//! the last failed attempt, doubling per failed re-drive, the batch bound, and the task itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::verify::StaticKeySource;
use kinde_core::{Outcome, Redrive, Webhooks};

struct Rig {
    issuer: TestIssuer,
    webhooks: Webhooks,
    /// Handler calls so far.
    calls: Arc<AtomicUsize>,
    /// Handler calls that fail before they succeed.
    fail: Arc<AtomicUsize>,
}

fn rig() -> Rig {
    let issuer = TestIssuer::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let fail = Arc::new(AtomicUsize::new(0));
    let (c, f) = (calls.clone(), fail.clone());
    let webhooks = Webhooks::builder()
        .key_source(StaticKeySource::new(issuer.jwks().to_string()))
        .park_after(1)
        .on(move |_: Event<UserCreated>| {
            let (c, f) = (c.clone(), f.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                match f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
                    Ok(_) => Err("told to fail"),
                    Err(_) => Ok(()),
                }
            }
        })
        .build()
        .unwrap();
    Rig {
        issuer,
        webhooks,
        calls,
        fail,
    }
}

impl Rig {
    /// Delivers a new `user.created`, failing, so it is parked; returns its token.
    async fn park_one(&self) -> String {
        self.fail.fetch_add(1, Ordering::SeqCst);
        let token = self
            .issuer
            .sign(&TestEvent::sample("user.created").into_claims());
        let resp = self.send(&token).await;
        assert_eq!(resp.outcome().code(), "parked", "{:?}", resp.body());
        token
    }

    async fn send(&self, token: &str) -> kinde_core::WebhookResponse {
        self.webhooks
            .handle(&http::HeaderMap::new(), token.as_bytes())
            .await
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_parked_event_is_redriven_after_its_delay_and_each_failure_doubles_it() {
    let r = rig();
    let token = r.park_one().await;
    r.fail.store(1, Ordering::SeqCst); // the first re-drive fails too
    let parked_at = SystemTime::now();
    let mut redrive = Redrive::new(r.webhooks.clone())
        .first_delay(10 * MIN)
        .max_delay(60 * MIN);

    // Not due before its first delay: nothing runs.
    let report = redrive.run_once(parked_at + 9 * MIN).await;
    assert!(report.replayed.is_empty() && report.failed.is_empty());
    assert_eq!(report.waiting, 1);
    assert_eq!(r.calls(), 1);

    // Due: replayed, fails again, stays parked with one more attempt.
    let report = redrive.run_once(parked_at + 11 * MIN).await;
    assert_eq!(report.replayed.len(), 1);
    assert!(matches!(report.replayed[0].1, Outcome::Parked));
    assert_eq!(r.calls(), 2);
    let parked = r.webhooks.parked().await.unwrap();
    assert_eq!(parked[0].attempts, 2);
    // The next is 20 minutes after that failure (now, on the wall clock, stored in whole
    // milliseconds), not 10.
    assert!(redrive.due_at(&parked[0]) >= parked_at + 20 * MIN - Duration::from_secs(1));
    let report = redrive.run_once(parked_at + 15 * MIN).await;
    assert_eq!((report.replayed.len(), report.waiting), (0, 1));
    assert_eq!(r.calls(), 2);

    // Due again and fixed: handled, unparked, and a delivery of it is a duplicate.
    let report = redrive.run_once(parked_at + 22 * MIN).await;
    assert!(matches!(report.replayed[0].1, Outcome::Handled));
    assert_eq!(r.calls(), 3);
    assert!(r.webhooks.parked().await.unwrap().is_empty());
    assert_eq!(r.send(&token).await.outcome().code(), "duplicate");
    let report = redrive.run_once(parked_at + 600 * MIN).await;
    assert_eq!(
        (report.replayed.len(), report.failed.len(), report.waiting),
        (0, 0, 0)
    );
    assert_eq!(r.calls(), 3);
}

#[tokio::test]
async fn a_look_replays_at_most_its_batch() {
    let r = rig();
    for _ in 0..3 {
        r.park_one().await;
    }
    let mut all: Vec<_> = r
        .webhooks
        .parked()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.event_id)
        .collect();
    assert_eq!(all.len(), 3);
    let later = SystemTime::now() + 60 * MIN;
    let mut redrive = Redrive::new(r.webhooks.clone()).first_delay(MIN).batch(2);
    let first = redrive.run_once(later).await;
    assert_eq!((first.replayed.len(), first.waiting), (2, 1));
    let second = redrive.run_once(later).await;
    assert_eq!((second.replayed.len(), second.waiting), (1, 0));
    let mut replayed: Vec<_> = first
        .replayed
        .iter()
        .chain(&second.replayed)
        .map(|(id, outcome)| {
            assert!(matches!(outcome, Outcome::Handled), "{outcome:?}");
            id.clone()
        })
        .collect();
    replayed.sort();
    all.sort();
    assert_eq!(replayed, all, "each parked event replayed once");
    assert!(r.webhooks.parked().await.unwrap().is_empty());
    assert_eq!(r.calls(), 6);
}

#[tokio::test]
async fn the_delay_doubles_up_to_its_maximum() {
    let r = rig();
    let redrive = Redrive::new(r.webhooks.clone())
        .first_delay(Duration::from_secs(5))
        .max_delay(Duration::from_secs(60));
    let delays: Vec<u64> = (0..6).map(|n| redrive.delay(n).as_secs()).collect();
    assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
    // Far past any shift: the maximum, no overflow.
    assert_eq!(redrive.delay(u32::MAX), Duration::from_secs(60));
    assert_eq!(
        Redrive::new(r.webhooks.clone()).delay(0),
        Duration::from_secs(300)
    );
}

#[tokio::test]
async fn the_background_task_replays_a_due_event() {
    let r = rig();
    let token = r.park_one().await;
    let task = tokio::spawn(
        Redrive::new(r.webhooks.clone())
            .first_delay(Duration::ZERO)
            .interval(Duration::from_millis(10))
            .run(),
    );
    let unparked = tokio::time::timeout(Duration::from_secs(30), async {
        while !r.webhooks.parked().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    task.abort();
    assert!(
        unparked.is_ok(),
        "the re-drive did not replay the event within 30 s"
    );
    assert_eq!(r.calls(), 2);
    assert_eq!(r.send(&token).await.outcome().code(), "duplicate");
}

#[tokio::test]
async fn delays_too_long_to_represent_never_panic() {
    let r = rig();
    r.park_one().await;
    let mut redrive = Redrive::new(r.webhooks.clone())
        .first_delay(Duration::MAX)
        .max_delay(Duration::MAX)
        .interval(Duration::MAX);
    let parked = r.webhooks.parked().await.unwrap();
    assert!(redrive.due_at(&parked[0]) > SystemTime::now() + 3650 * 24 * 60 * MIN);
    let report = redrive.run_once(SystemTime::now()).await;
    assert_eq!((report.replayed.len(), report.waiting), (0, 1));
    // The task starts (its first look is at once) and keeps running without panicking.
    let task = tokio::spawn(redrive.run());
    tokio::time::sleep(Duration::from_millis(50)).await;
    task.abort();
    let ended = task
        .await
        .expect_err("the re-drive task never ends by itself");
    assert!(ended.is_cancelled(), "the re-drive task panicked: {ended}");
    assert_eq!(r.calls(), 1);
}
