//! The file store from inside: the schema upgrade, entity records against the capacity,
//! expiry of entity records and failure counts, the park limits across a reopen, and (in
//! `reference`) every answer compared with the memory store's, the reference implementation,
//! with the file's indexes checked after each run.

mod indexes;
mod reference;

use std::path::Path;
use std::time::Duration;

use redb::ReadableDatabase;

use self::indexes::check_indexes;
use super::tables::{CLAIMS, EVENTS, HANDLED, HANDLED_TOKEN, META, SCHEMA_KEY};
use super::{FileStore, FileStoreConfig, FileStoreError};
use crate::event::EventId;
use crate::store::{
    Applied, Claim, ClaimRequest, ClaimToken, Completion, Entity, Failed, Failure, Fenced,
    IdempotencyStore, ParkLimits, StoreError,
};
use crate::testing::ManualClock;

const HOUR: Duration = Duration::from_secs(3600);

/// 2030-01-01T00:00:00Z: only the manual clock expires anything.
fn t0() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap()
}

fn id(s: &str) -> EventId {
    EventId::new(s).unwrap()
}

fn open(path: &Path, clock: &ManualClock, capacity: usize) -> FileStore {
    FileStore::new(
        FileStoreConfig::new(path)
            .capacity(capacity)
            .clock(clock.clone()),
    )
    .unwrap()
}

async fn claim(
    s: &FileStore,
    event: &str,
    entity: Option<(&str, i64)>,
) -> Result<Claim, StoreError> {
    let event = id(event);
    let request = ClaimRequest::new(&event, HOUR, HOUR)
        .entity(entity.map(|(key, timestamp)| Entity { key, timestamp }));
    s.claim(&request).await
}

fn token(c: Claim) -> ClaimToken {
    match c {
        Claim::StartProcessing { token, .. } => token,
        other => panic!("expected StartProcessing, got {other:?}"),
    }
}

async fn complete(s: &FileStore, event: &str, t: &ClaimToken, entity: Option<(&str, i64)>) {
    let completion = Completion::new(HOUR).entity(
        entity.map(|(key, timestamp)| Entity { key, timestamp }),
        false,
    );
    let done = s.complete(&id(event), t, &completion).await.unwrap();
    assert_eq!(done, Fenced::Applied);
}

fn failure(park_after: u32, limits: ParkLimits, done_ttl: Duration) -> Failure<'static> {
    Failure {
        park_after,
        limits,
        done_ttl,
        event_type: "user.updated",
        token: "header.payload.signature",
        error: "boom",
        at_ms: 1_700_000_000_000,
    }
}

/// Claims `event` and fails it with `f`.
async fn claim_and_fail(s: &FileStore, event: &str, f: &Failure<'_>) -> Failed {
    let t = token(claim(s, event, None).await.unwrap());
    s.fail(&id(event), &t, None, f).await.unwrap()
}

/// The schema version a store file records, read with redb directly.
fn schema_version(path: &Path) -> Option<u64> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let version = txn
        .open_table(META)
        .unwrap()
        .get(SCHEMA_KEY)
        .unwrap()
        .map(|v| v.value());
    version
}

#[tokio::test]
async fn a_schema_1_file_is_upgraded_in_place_and_keeps_what_it_held() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("v1.redb");
    let clock = ManualClock::new(t0());
    let far = (t0().unix_timestamp() as u64 + 3600) * 1000;
    {
        // What kinde-core wrote before ordering and parking: these tables, version 1.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(SCHEMA_KEY, 1).unwrap();
        let mut events = txn.open_table(EVENTS).unwrap();
        events.insert("old-done", (far, HANDLED_TOKEN)).unwrap();
        events.insert("old-busy", (far, 42)).unwrap();
        drop(events);
        txn.open_table(HANDLED)
            .unwrap()
            .insert((far, "old-done"), ())
            .unwrap();
        txn.open_table(CLAIMS)
            .unwrap()
            .insert((far, "old-busy"), ())
            .unwrap();
        txn.commit().unwrap();
    }
    let s = open(&path, &clock, 100);
    assert_eq!(
        claim(&s, "old-done", None).await.unwrap(),
        Claim::AlreadyHandled
    );
    assert_eq!(
        claim(&s, "old-busy", None).await.unwrap(),
        Claim::InProgress
    );
    // The claim of the old version's process is still fenced by its token.
    let old = ClaimToken::from_string("file:42".into());
    let done = s
        .complete(&id("old-busy"), &old, &Completion::new(HOUR))
        .await;
    assert_eq!(done.unwrap(), Fenced::Applied);
    // The new tables work on it.
    let t = token(claim(&s, "new", Some(("user:1", 5))).await.unwrap());
    complete(&s, "new", &t, Some(("user:1", 5))).await;
    assert_eq!(
        claim(&s, "older", Some(("user:1", 4))).await.unwrap(),
        Claim::Superseded
    );
    drop(s);
    check_indexes(&path);
    let version = schema_version(&path);
    assert_eq!(version, Some(2));
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("v3.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(SCHEMA_KEY, 3).unwrap();
        txn.commit().unwrap();
    }
    let err = FileStore::open(&path).unwrap_err();
    assert!(
        matches!(err, FileStoreError::Incompatible { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("schema version 3"), "{err}");
    let version = schema_version(&path);
    assert_eq!(version, Some(3));
}

#[tokio::test]
async fn entity_records_count_against_the_capacity_and_are_never_evicted() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.redb");
    let clock = ManualClock::new(t0());
    let s = open(&path, &clock, 3);
    // One event and its entity: two entries.
    let t = token(claim(&s, "e1", Some(("user:1", 10))).await.unwrap());
    complete(&s, "e1", &t, Some(("user:1", 10))).await;
    assert_eq!(s.len().unwrap(), 2);
    // A second entity needs two more: the handled event goes, the entity record stays.
    token(claim(&s, "e2", Some(("user:2", 10))).await.unwrap());
    assert_eq!(s.len().unwrap(), 3);
    // Nothing left to evict: a third entity is refused, no entity record forgotten.
    assert!(matches!(
        claim(&s, "e3", Some(("user:3", 10))).await,
        Err(StoreError::Full(3))
    ));
    // user:1's record is intact: a superseded event needs an entry of its own, so at this
    // capacity it waits (503, Kinde retries) rather than forget the entity.
    assert!(matches!(
        claim(&s, "e0", Some(("user:1", 5))).await,
        Err(StoreError::Full(3))
    ));
    drop(s);
    // Nor at open, with the capacity lowered.
    let s = open(&path, &clock, 1);
    assert_eq!(s.len().unwrap(), 3);
    drop(s);
    let s = open(&path, &clock, 10);
    assert_eq!(
        claim(&s, "e0", Some(("user:1", 5))).await.unwrap(),
        Claim::Superseded
    );
    assert_eq!(
        claim(&s, "e2b", Some(("user:2", 11))).await.unwrap(),
        Claim::InProgress
    );
}

#[tokio::test]
async fn entity_records_and_failure_counts_expire_after_the_done_ttl() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.redb");
    let clock = ManualClock::new(t0());
    let s = open(&path, &clock, 100);
    let t = token(claim(&s, "e1", Some(("user:1", 200))).await.unwrap());
    complete(&s, "e1", &t, Some(("user:1", 200))).await;
    let counted = failure(3, ParkLimits::default(), HOUR);
    assert_eq!(
        claim_and_fail(&s, "f1", &counted).await,
        Failed::Released { attempts: 1 }
    );
    clock.advance(HOUR - Duration::from_secs(1));
    assert_eq!(
        claim(&s, "old", Some(("user:1", 100))).await.unwrap(),
        Claim::Superseded
    );
    assert_eq!(
        claim_and_fail(&s, "f1", &counted).await,
        Failed::Released { attempts: 2 }
    );
    // A completion refreshed nothing for user:1 since; its record goes one done TTL after it.
    clock.advance(Duration::from_secs(2));
    match claim(&s, "older", Some(("user:1", 50))).await.unwrap() {
        Claim::StartProcessing { previous, .. } => assert_eq!(previous, None),
        other => panic!("{other:?}"),
    }
    // f1's count was refreshed by its second failure: it is still there, then expires.
    assert_eq!(
        claim_and_fail(&s, "f1", &counted).await,
        Failed::Parked { attempts: 3 }
    );
    assert!(s.unpark(&id("f1"), None).await.unwrap());
    clock.advance(HOUR + Duration::from_secs(1));
    assert_eq!(
        claim_and_fail(&s, "f1", &counted).await,
        Failed::Released { attempts: 1 }
    );
    drop(s);
    check_indexes(&path);
    // Opening purges what expired while the file was closed.
    clock.advance(2 * HOUR);
    let s = open(&path, &clock, 100);
    assert_eq!(s.len().unwrap(), 0);
    drop(s);
    check_indexes(&path);
}

#[tokio::test]
async fn the_park_limits_count_what_is_on_disk_across_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.redb");
    let clock = ManualClock::new(t0());
    let s = open(&path, &clock, 100);
    let one = failure(1, ParkLimits::default(), HOUR);
    assert_eq!(
        claim_and_fail(&s, "p1", &one).await,
        Failed::Parked { attempts: 1 }
    );
    let size = s.parked_event(&id("p1")).await.unwrap().unwrap().size();
    drop(s);
    // Exactly one event's bytes, then one event.
    let by_bytes = failure(
        1,
        ParkLimits {
            events: 100,
            bytes: size,
        },
        HOUR,
    );
    let by_count = failure(
        1,
        ParkLimits {
            events: 1,
            bytes: usize::MAX,
        },
        HOUR,
    );
    let s = open(&path, &clock, 100);
    assert!(matches!(
        claim_and_fail(&s, "p2", &by_bytes).await,
        Failed::ParkFull { .. }
    ));
    assert!(matches!(
        claim_and_fail(&s, "p2", &by_count).await,
        Failed::ParkFull { .. }
    ));
    // Re-parking the same event (a replay that failed) replaces its bytes, not adds to them.
    let t = token(
        s.claim(&ClaimRequest::new(&id("p1"), HOUR, HOUR).replay(true))
            .await
            .unwrap(),
    );
    let again = s.fail(&id("p1"), &t, None, &by_bytes).await.unwrap();
    assert_eq!(again, Failed::Parked { attempts: 2 });
    // Once it is gone, the next one fits.
    assert!(s.unpark(&id("p1"), None).await.unwrap());
    assert!(!s.unpark(&id("p1"), None).await.unwrap());
    assert_eq!(
        claim_and_fail(&s, "p2", &by_bytes).await,
        Failed::Parked { attempts: 3 }
    );
    assert_eq!(
        s.parked()
            .await
            .unwrap()
            .iter()
            .map(|p| p.event_id.to_string())
            .collect::<Vec<_>>(),
        ["p2"]
    );
    drop(s);
    check_indexes(&path);
}

#[tokio::test]
async fn a_replayed_parked_event_supersedes_and_completes_like_a_delivery() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.redb");
    let clock = ManualClock::new(t0());
    let s = open(&path, &clock, 100);
    let key = Some(("user:1", 100));
    let t = token(claim(&s, "poison", key).await.unwrap());
    let one = failure(1, ParkLimits::default(), HOUR);
    let parked = s
        .fail(&id("poison"), &t, Some("user:1"), &one)
        .await
        .unwrap();
    assert_eq!(parked, Failed::Parked { attempts: 1 });
    // The entity is free again: a later event is applied meanwhile.
    let t = token(claim(&s, "later", Some(("user:1", 200))).await.unwrap());
    complete(&s, "later", &t, Some(("user:1", 200))).await;
    drop(s);
    let s = open(&path, &clock, 100);
    let poison = id("poison");
    let replay = ClaimRequest::new(&poison, HOUR, HOUR)
        .entity(Some(Entity {
            key: "user:1",
            timestamp: 100,
        }))
        .replay(true);
    assert_eq!(s.claim(&replay).await.unwrap(), Claim::Superseded);
    assert!(s.unpark(&id("poison"), Some("user:1")).await.unwrap());
    assert_eq!(
        claim(&s, "poison", key).await.unwrap(),
        Claim::AlreadyHandled
    );
    assert_eq!(s.parked().await.unwrap(), []);
    match claim(&s, "latest", Some(("user:1", 300))).await.unwrap() {
        Claim::StartProcessing { previous, .. } => assert_eq!(
            previous,
            Some(Applied {
                timestamp: 200,
                deleted: false
            })
        ),
        other => panic!("{other:?}"),
    }
    drop(s);
    check_indexes(&path);
}
