//! Parking across two receivers sharing Redis, on the single server and on the cluster: the
//! n-th failure parks (a failing handler, an unparseable event), a parked event's retries
//! answer `parked`, replays (success, failure, superseded), re-drives from both receivers, and
//! the global bound.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kinde_core::store::ParkLimits;
use kinde_core::{EntityOrdering, Outcome, Redrive, ReplayError, WebhooksBuilder};
use serde_json::json;

use crate::redis_common::event_id;
use crate::rig::{ago, rig, send, Redis, Rig};

fn tuned(ordering: bool, park_after: u32) -> impl Fn(WebhooksBuilder) -> WebhooksBuilder {
    move |b| {
        let b = b.park_after(park_after);
        if ordering {
            b.ordering(EntityOrdering::latest_wins())
        } else {
            b
        }
    }
}

/// A handler that always fails: 500, 500, then parked on the third failure (never 409), over
/// both receivers; later deliveries answer `parked` on either without running it; both list it.
async fn failing_handler_parks(redis: &Redis, ordering: bool) {
    let r = rig(redis, tuned(ordering, 3)).await;
    r.handlers.fail.store(usize::MAX, Ordering::SeqCst);
    let (token, id) = r.event("user.updated", "kp_1", ago(1));
    assert_eq!(send(&r.a, &token).await, (500, "handler_failed"));
    assert_eq!(send(&r.b, &token).await, (500, "handler_failed"));
    assert_eq!(send(&r.a, &token).await, (200, "parked"));
    for w in [&r.b, &r.a, &r.b] {
        assert_eq!(send(w, &token).await, (200, "parked"));
    }
    assert_eq!(r.calls().len(), 3);
    for w in [&r.a, &r.b] {
        let list = w.parked().await.unwrap();
        assert_eq!(list.len(), 1);
        let p = &list[0];
        assert_eq!(p.event_id, id);
        assert_eq!((p.attempts, p.event_type.as_str()), (3, "user.updated"));
        assert!(p.last_error.contains("told to fail"), "{}", p.last_error);
        assert_eq!(p.token, token);
        assert!(p.first_attempt_ms <= p.last_attempt_ms);
    }
}

#[tokio::test]
async fn a_failing_handler_is_parked_on_the_nth_failure_across_two_receivers() {
    if let Some(redis) = Redis::single().await {
        failing_handler_parks(&redis, false).await;
        failing_handler_parks(&redis, true).await;
    }
}

#[tokio::test]
async fn a_failing_handler_is_parked_on_the_nth_failure_across_two_receivers_on_a_cluster() {
    if let Some(redis) = Redis::cluster().await {
        failing_handler_parks(&redis, false).await;
        failing_handler_parks(&redis, true).await;
    }
}

/// An event whose data does not parse (no user id) fails without running a handler, and is
/// parked on its second delivery (with ordering on it is not ordered: its key cannot be read).
async fn unparseable_parks(redis: &Redis, ordering: bool) {
    let r = rig(redis, tuned(ordering, 2)).await;
    let (broken, id) = r.raw_event("user.created", json!({"user": {"email": "no id"}}), ago(1));
    assert_eq!(send(&r.a, &broken).await, (500, "unparseable_event"));
    assert_eq!(send(&r.b, &broken).await, (200, "parked"));
    assert_eq!(send(&r.a, &broken).await, (200, "parked"));
    assert!(r.calls().is_empty());
    let list = r.b.parked().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].event_id.as_str(), list[0].attempts),
        (id.as_str(), 2)
    );
    assert!(
        list[0].last_error.starts_with("unparseable event"),
        "{}",
        list[0].last_error
    );
}

#[tokio::test]
async fn an_unparseable_event_is_parked_on_the_nth_failure() {
    if let Some(redis) = Redis::single().await {
        unparseable_parks(&redis, false).await;
        unparseable_parks(&redis, true).await;
    }
}

#[tokio::test]
async fn an_unparseable_event_is_parked_on_the_nth_failure_on_a_cluster() {
    if let Some(redis) = Redis::cluster().await {
        unparseable_parks(&redis, false).await;
        unparseable_parks(&redis, true).await;
    }
}

/// Parked by A; a replay through B that fails again keeps it parked (one attempt more); one
/// through A that succeeds handles it, unparks it, and its deliveries are duplicates.
async fn replays(redis: &Redis, ordering: bool) {
    let r = rig(redis, tuned(ordering, 1)).await;
    r.handlers.fail.store(2, Ordering::SeqCst);
    // Older than the replay window would let through: replays skip it on purpose.
    let (token, id) = r.event("user.updated", "kp_1", ago(60));
    assert_eq!(send(&r.a, &token).await, (200, "parked"));
    let id = event_id(id);
    assert!(matches!(r.b.replay(&id).await.unwrap(), Outcome::Parked));
    let list = r.a.parked().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].attempts, 2);
    assert_eq!(send(&r.b, &token).await, (200, "parked"));
    assert!(matches!(r.a.replay(&id).await.unwrap(), Outcome::Handled));
    assert!(r.a.parked().await.unwrap().is_empty());
    assert!(r.b.parked().await.unwrap().is_empty());
    assert_eq!(send(&r.a, &token).await, (200, "duplicate"));
    assert_eq!(send(&r.b, &token).await, (200, "duplicate"));
    assert!(matches!(
        r.b.replay(&id).await,
        Err(ReplayError::NotParked(_))
    ));
    assert_eq!(r.calls().len(), 3);
}

/// With ordering, a replay is ordered like a delivery: a parked event older than what was
/// applied since is superseded, and unparked.
async fn replay_superseded(redis: &Redis) {
    let r = rig(redis, tuned(true, 1)).await;
    r.handlers.fail.store(1, Ordering::SeqCst);
    let (old, id) = r.event("user.updated", "kp_1", ago(60));
    assert_eq!(send(&r.a, &old).await, (200, "parked"));
    let (new, _) = r.event("user.updated", "kp_1", ago(1));
    assert_eq!(send(&r.b, &new).await, (200, "handled"));
    assert!(matches!(
        r.b.replay(&event_id(id)).await.unwrap(),
        Outcome::Superseded
    ));
    assert!(r.a.parked().await.unwrap().is_empty());
    assert_eq!(send(&r.a, &old).await, (200, "duplicate"));
    assert_eq!(r.calls().len(), 2);
}

#[tokio::test]
async fn replays_that_fail_stay_parked_and_replays_that_succeed_unpark() {
    if let Some(redis) = Redis::single().await {
        replays(&redis, false).await;
        replays(&redis, true).await;
        replay_superseded(&redis).await;
    }
}

#[tokio::test]
async fn replays_that_fail_stay_parked_and_replays_that_succeed_unpark_on_a_cluster() {
    if let Some(redis) = Redis::cluster().await {
        replays(&redis, false).await;
        replays(&redis, true).await;
        replay_superseded(&redis).await;
    }
}

/// Re-drives in both receivers, looking at once past the event's delay: it is replayed (and its
/// handler run) exactly once, and unparked for both; a failed re-drive counts an attempt and
/// doubles its delay, read from Redis's record of the last failure.
async fn redrives(redis: &Redis, ordering: bool) {
    let r = rig(redis, tuned(ordering, 1)).await;
    r.handlers.fail.store(2, Ordering::SeqCst);
    let (token, _) = r.event("user.updated", "kp_1", ago(1));
    assert_eq!(send(&r.a, &token).await, (200, "parked"));
    let minute = Duration::from_secs(60);
    let redrive = |w: &kinde_core::Webhooks| Redrive::new(w.clone()).first_delay(10 * minute);
    let (mut ra, mut rb) = (redrive(&r.a), redrive(&r.b));
    let parked = r.a.parked().await.unwrap();
    let due = ra.due_at(&parked[0]);
    assert_eq!(due, rb.due_at(&r.b.parked().await.unwrap()[0]));
    // Not due yet on either.
    assert!(ra.run_once(due - minute).await.replayed.is_empty());
    // Due: one fails again (one more attempt; the next 20 minutes after it).
    let once = ra.run_once(due).await;
    assert!(matches!(once.replayed[..], [(_, Outcome::Parked)]));
    let parked = r.b.parked().await.unwrap();
    assert_eq!(parked[0].attempts, 2);
    let next = rb.due_at(&parked[0]);
    assert!(
        next >= due + 10 * minute - Duration::from_secs(1),
        "{next:?} {due:?}"
    );
    assert!(rb.run_once(next - minute).await.replayed.is_empty());
    // Both look at once when it is due: one replay runs it, the other finds it running or gone.
    let (a, b) = tokio::join!(ra.run_once(next), rb.run_once(next));
    let handled = a
        .replayed
        .iter()
        .chain(&b.replayed)
        .filter(|(_, o)| matches!(o, Outcome::Handled))
        .count();
    assert_eq!(handled, 1, "{a:?} {b:?}");
    assert!(a.failed.is_empty() && b.failed.is_empty(), "{a:?} {b:?}");
    assert!(r.a.parked().await.unwrap().is_empty());
    assert!(r.b.parked().await.unwrap().is_empty());
    assert_eq!(send(&r.b, &token).await, (200, "duplicate"));
    assert_eq!(r.calls().len(), 3);
}

#[tokio::test]
async fn redrives_in_two_receivers_replay_a_parked_event_once() {
    if let Some(redis) = Redis::single().await {
        redrives(&redis, false).await;
        redrives(&redis, true).await;
    }
}

#[tokio::test]
async fn redrives_in_two_receivers_replay_a_parked_event_once_on_a_cluster() {
    if let Some(redis) = Redis::cluster().await {
        redrives(&redis, false).await;
        redrives(&redis, true).await;
    }
}

/// The bytes `{parked} bytes` holds: the sum of the parked records' sizes.
async fn counted_bytes(redis: &Redis, r: &Rig) -> usize {
    let mut raw = redis.raw().await;
    let key = format!("{}{{parked}} bytes", r.prefix);
    crate::redis_common::get(&mut raw, &key)
        .await
        .map_or(0, |v| v.parse().unwrap())
}

/// Ten failing events of different users (different slots on a cluster) delivered at once to
/// both receivers, with room for three: exactly three are parked (and listed), the others are
/// answered 500 and stay unparked (never dropped: their next deliveries run again). A replay
/// frees a place, which the next failure takes.
async fn global_bound(redis: &Redis, ordering: bool) {
    let limits = ParkLimits::default().events(3);
    let r = rig(redis, move |b| tuned(ordering, 1)(b).park_limits(limits)).await;
    r.handlers.fail.store(usize::MAX, Ordering::SeqCst);
    let events: Vec<(String, String)> = (0..10)
        .map(|i| r.event("user.updated", &format!("kp_{i}"), ago(1)))
        .collect();
    let tasks: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, (token, _))| crate::rig::spawn_send(if i % 2 == 0 { &r.a } else { &r.b }, token))
        .collect();
    let mut parked = HashSet::new();
    for (task, (_, id)) in tasks.into_iter().zip(&events) {
        match task.await.unwrap() {
            (200, "parked") => {
                parked.insert(id.clone());
            }
            (500, "handler_failed") => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(parked.len(), 3, "exactly the bound");
    let listed: HashSet<String> =
        r.b.parked()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.event_id.to_string())
            .collect();
    assert_eq!(listed, parked);
    let sizes: usize = r.a.parked().await.unwrap().iter().map(|p| p.size()).sum();
    assert_eq!(counted_bytes(redis, &r).await, sizes);
    for (token, id) in &events {
        let expected = if parked.contains(id) {
            (200, "parked")
        } else {
            (500, "handler_failed")
        };
        assert_eq!(send(&r.a, token).await, expected, "{id}");
    }
    assert_eq!(r.calls().len(), 10 + 7);

    // A successful replay frees a place.
    r.handlers.fail.store(0, Ordering::SeqCst);
    let freed = parked.iter().next().unwrap().clone();
    assert!(matches!(
        r.a.replay(&event_id(&freed)).await.unwrap(),
        Outcome::Handled
    ));
    r.handlers.fail.store(usize::MAX, Ordering::SeqCst);
    let (token, id) = events.iter().find(|(_, id)| !parked.contains(id)).unwrap();
    assert_eq!(send(&r.b, token).await, (200, "parked"));
    let listed: HashSet<String> =
        r.a.parked()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.event_id.to_string())
            .collect();
    assert_eq!(listed.len(), 3);
    assert!(listed.contains(id) && !listed.contains(&freed));
    let sizes: usize = r.a.parked().await.unwrap().iter().map(|p| p.size()).sum();
    assert_eq!(counted_bytes(redis, &r).await, sizes);
}

/// The byte bound: room for two records of this size, not three.
async fn byte_bound(redis: &Redis) {
    let probe = rig(redis, |b| b).await;
    let size = probe.event("user.updated", "kp_0", ago(1)).0.len() + 150;
    let limits = ParkLimits::default().bytes(2 * size + size / 2);
    let r = rig(redis, move |b| b.park_after(1).park_limits(limits)).await;
    r.handlers.fail.store(usize::MAX, Ordering::SeqCst);
    let answers: Vec<(u16, &str)> = {
        let mut v = Vec::new();
        for i in 0..3 {
            let (token, _) = r.event("user.updated", &format!("kp_{i}"), ago(1));
            v.push(send(if i % 2 == 0 { &r.a } else { &r.b }, &token).await);
        }
        v
    };
    assert_eq!(
        answers,
        vec![(200, "parked"), (200, "parked"), (500, "handler_failed")]
    );
    assert_eq!(r.a.parked().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parked_bound_holds_across_receivers_and_a_full_park_answers_500() {
    if let Some(redis) = Redis::single().await {
        global_bound(&redis, false).await;
        global_bound(&redis, true).await;
        byte_bound(&redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parked_bound_holds_across_receivers_and_a_full_park_answers_500_on_a_cluster() {
    if let Some(redis) = Redis::cluster().await {
        global_bound(&redis, false).await;
        global_bound(&redis, true).await;
        byte_bound(&redis).await;
    }
}
