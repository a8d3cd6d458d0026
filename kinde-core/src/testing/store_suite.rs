//! The store protocol, checked against any [`IdempotencyStore`]: the memory store, Redis, the
//! file store — or your own. Every check uses fresh random ids and entity keys, so one store
//! (even a shared Redis) serves them all, and they may run concurrently.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! kinde_core::testing::check_store_protocol(&kinde_core::MemoryStore::default()).await;
//! # }
//! ```

use std::time::Duration;

use crate::event::EventId;
use crate::store::{
    Applied, Claim, ClaimRequest, ClaimToken, Completion, Entity, Failed, Failure, Fenced,
    IdempotencyStore, ParkLimits,
};

const LONG: Duration = Duration::from_secs(3600);

fn fresh(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

fn fresh_id() -> EventId {
    EventId::new(fresh("event")).expect("a valid id")
}

async fn claim(
    s: &dyn IdempotencyStore,
    id: &EventId,
    entity: Option<(&str, i64)>,
    replay: bool,
) -> Claim {
    let request = ClaimRequest::new(id, LONG, LONG)
        .entity(entity.map(|(key, timestamp)| Entity { key, timestamp }))
        .replay(replay);
    s.claim(&request).await.expect("the store answers")
}

fn started(c: Claim, what: &str) -> (ClaimToken, Option<Applied>) {
    match c {
        Claim::StartProcessing { token, previous } => (token, previous),
        other => panic!("{what}: expected StartProcessing, got {other:?}"),
    }
}

async fn complete(
    s: &dyn IdempotencyStore,
    id: &EventId,
    t: &ClaimToken,
    entity: Option<(&str, i64)>,
    deletes: bool,
) {
    let completion = Completion::new(LONG).entity(
        entity.map(|(key, timestamp)| Entity { key, timestamp }),
        deletes,
    );
    let done = s
        .complete(id, t, &completion)
        .await
        .expect("the store answers");
    assert_eq!(done, Fenced::Applied, "completing {id}");
}

fn failure(park_after: u32, limits: ParkLimits, error: &'static str) -> Failure<'static> {
    Failure {
        park_after,
        limits,
        done_ttl: LONG,
        event_type: "user.updated",
        token: "header.payload.signature",
        error,
        at_ms: 1_700_000_000_000,
    }
}

/// Runs every check of the store protocol against `store`; panics with what differed.
pub async fn check_store_protocol(store: &dyn IdempotencyStore) {
    dedupe_and_fencing(store).await;
    latest_wins(store).await;
    tombstones(store).await;
    in_progress_entities(store).await;
    parking(store).await;
    park_limits_and_unpark(store).await;
}

async fn dedupe_and_fencing(s: &dyn IdempotencyStore) {
    let id = fresh_id();
    let (t1, previous) = started(claim(s, &id, None, false).await, "a new event");
    assert_eq!(previous, None);
    assert_eq!(claim(s, &id, None, false).await, Claim::InProgress);
    assert_eq!(s.release(&id, &t1, None).await.unwrap(), Fenced::Applied);
    let (t2, _) = started(claim(s, &id, None, false).await, "after a release");
    assert_ne!(t1, t2);
    assert_eq!(
        s.release(&id, &t1, None).await.unwrap(),
        Fenced::Superseded,
        "an old token controls nothing"
    );
    let old = s.complete(&id, &t1, &Completion::new(LONG)).await.unwrap();
    assert_eq!(old, Fenced::Superseded);
    complete(s, &id, &t2, None, false).await;
    assert_eq!(claim(s, &id, None, false).await, Claim::AlreadyHandled);
}

async fn latest_wins(s: &dyn IdempotencyStore) {
    let k = fresh("user");
    let newer = fresh_id();
    let (t, _) = started(
        claim(s, &newer, Some((&k, 200)), false).await,
        "the first event",
    );
    complete(s, &newer, &t, Some((&k, 200)), false).await;
    let older = fresh_id();
    assert_eq!(
        claim(s, &older, Some((&k, 100)), false).await,
        Claim::Superseded,
        "an older event after a newer one"
    );
    assert_eq!(
        claim(s, &older, Some((&k, 100)), false).await,
        Claim::AlreadyHandled,
        "a superseded event is remembered as handled"
    );
    let tie = fresh_id();
    let (t, previous) = started(
        claim(s, &tie, Some((&k, 200)), false).await,
        "an equal timestamp",
    );
    assert_eq!(
        previous,
        Some(Applied {
            timestamp: 200,
            deleted: false
        })
    );
    complete(s, &tie, &t, Some((&k, 200)), false).await;
    // Another entity is not affected.
    let other = fresh("user");
    let e = fresh_id();
    let (t, previous) = started(
        claim(s, &e, Some((&other, 1)), false).await,
        "another entity",
    );
    assert_eq!(previous, None);
    complete(s, &e, &t, Some((&other, 1)), false).await;
    // An event without an entity is never superseded.
    let free = fresh_id();
    started(claim(s, &free, None, false).await, "no entity");
}

async fn tombstones(s: &dyn IdempotencyStore) {
    let k = fresh("user");
    let created = fresh_id();
    let (t, _) = started(claim(s, &created, Some((&k, 10)), false).await, "created");
    complete(s, &created, &t, Some((&k, 10)), false).await;
    let deleted = fresh_id();
    let (t, _) = started(claim(s, &deleted, Some((&k, 20)), false).await, "deleted");
    complete(s, &deleted, &t, Some((&k, 20)), true).await;
    let late_update = fresh_id();
    assert_eq!(
        claim(s, &late_update, Some((&k, 15)), false).await,
        Claim::Superseded,
        "an update older than the delete does not resurrect"
    );
    let recreated = fresh_id();
    let (t, previous) = started(
        claim(s, &recreated, Some((&k, 30)), false).await,
        "recreated",
    );
    assert_eq!(
        previous,
        Some(Applied {
            timestamp: 20,
            deleted: true
        }),
        "the tombstone is what came before"
    );
    complete(s, &recreated, &t, Some((&k, 30)), false).await;
}

async fn in_progress_entities(s: &dyn IdempotencyStore) {
    let k = fresh("organization");
    let running = fresh_id();
    let (t, _) = started(claim(s, &running, Some((&k, 100)), false).await, "running");
    let older = fresh_id();
    assert_eq!(
        claim(s, &older, Some((&k, 50)), false).await,
        Claim::Superseded,
        "older than the one in progress"
    );
    let newer = fresh_id();
    assert_eq!(
        claim(s, &newer, Some((&k, 150)), false).await,
        Claim::InProgress,
        "newer than the one in progress: Kinde retries it"
    );
    complete(s, &running, &t, Some((&k, 100)), false).await;
    let (t, previous) = started(claim(s, &newer, Some((&k, 150)), false).await, "after it");
    assert_eq!(previous.map(|p| p.timestamp), Some(100));
    // A failure frees the entity too.
    let f = s
        .fail(
            &newer,
            &t,
            Some(&k),
            &failure(5, ParkLimits::default(), "boom"),
        )
        .await
        .unwrap();
    assert_eq!(f, Failed::Released { attempts: 1 });
    let next = fresh_id();
    let (t, _) = started(
        claim(s, &next, Some((&k, 160)), false).await,
        "after a failure",
    );
    s.release(&next, &t, Some(&k)).await.unwrap();
    let again = fresh_id();
    started(
        claim(s, &again, Some((&k, 170)), false).await,
        "after a release",
    );
}

async fn parking(s: &dyn IdempotencyStore) {
    let limits = ParkLimits::default();
    for entity in [None, Some(fresh("user"))] {
        let id = fresh_id();
        let e = entity.as_deref().map(|k| (k, 5));
        let key = entity.as_deref();
        for attempt in 1..=2 {
            let (t, _) = started(claim(s, &id, e, false).await, "a failing event");
            let f = s
                .fail(&id, &t, key, &failure(3, limits, "first"))
                .await
                .unwrap();
            assert_eq!(f, Failed::Released { attempts: attempt });
        }
        let (t, _) = started(claim(s, &id, e, false).await, "its third attempt");
        let f = s
            .fail(&id, &t, key, &failure(3, limits, "third"))
            .await
            .unwrap();
        assert_eq!(f, Failed::Parked { attempts: 3 });
        assert_eq!(claim(s, &id, e, false).await, Claim::Parked);
        let parked = s.parked_event(&id).await.unwrap().expect("parked");
        assert_eq!(
            (
                parked.attempts,
                parked.last_error.as_str(),
                parked.token.as_str()
            ),
            (3, "third", "header.payload.signature")
        );
        assert_eq!(parked.event_type, "user.updated");
        assert!(s.parked().await.unwrap().iter().any(|p| p.event_id == id));
        // A replay that fails again re-parks it, one attempt more.
        let (t, _) = started(claim(s, &id, e, true).await, "a replay");
        let f = s
            .fail(&id, &t, key, &failure(1, limits, "again"))
            .await
            .unwrap();
        assert_eq!(f, Failed::Parked { attempts: 4 });
        // A replay that succeeds unparks it and records it handled.
        let (t, _) = started(claim(s, &id, e, true).await, "a second replay");
        complete(s, &id, &t, e, false).await;
        assert_eq!(claim(s, &id, e, false).await, Claim::AlreadyHandled);
        assert_eq!(s.parked_event(&id).await.unwrap(), None);
    }
}

async fn park_limits_and_unpark(s: &dyn IdempotencyStore) {
    let id = fresh_id();
    let (t, _) = started(claim(s, &id, None, false).await, "a poison event");
    let f = s
        .fail(&id, &t, None, &failure(1, ParkLimits::default(), "x"))
        .await
        .unwrap();
    assert_eq!(f, Failed::Parked { attempts: 1 });
    assert!(s.unpark(&id, None).await.unwrap());
    assert_eq!(s.parked_event(&id).await.unwrap(), None);
    let (t, _) = started(claim(s, &id, None, false).await, "after unpark: new again");
    // A park past the byte bound is refused: released instead, never dropped.
    let tiny = ParkLimits::default().events(10_000).bytes(8);
    let f = s
        .fail(&id, &t, None, &failure(1, tiny, "too big"))
        .await
        .unwrap();
    assert!(matches!(f, Failed::ParkFull { .. }), "{f:?}");
    assert_eq!(s.parked_event(&id).await.unwrap(), None);
    started(claim(s, &id, None, false).await, "released, not parked");
}
