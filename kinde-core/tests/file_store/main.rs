//! The durable store (feature `durable`): the claim protocol and its fencing, what survives a
//! reopen and a real crash (a child process killed with SIGKILL), one opener per file, size
//! bounds and expiry; receivers keeping "never twice", ordering and parking across restarts
//! (`sync_grade`).
//!
//! Time is a manual wall clock wherever a TTL matters, so nothing here sleeps for a TTL or
//! asserts on timing. The crash and second-process cases (`processes`) run this test binary
//! again as the child and kill it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kinde_core::store::{
    Claim, ClaimRequest, ClaimToken, Completion, Fenced, FileStore, FileStoreConfig,
    FileStoreError, IdempotencyStore, StoreError,
};
use kinde_core::testing::ManualClock;
use kinde_core::EventId;
use time::OffsetDateTime;

mod processes;
mod sync_grade;

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

/// 2030-01-01T00:00:00Z: far from the real clock, so only the manual clock can expire things.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap()
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn open(path: &Path, clock: &ManualClock) -> FileStore {
    FileStore::new(FileStoreConfig::new(path).clock(clock.clone())).expect("open the store")
}

fn started(c: Claim) -> ClaimToken {
    match c {
        Claim::StartProcessing { token, .. } => token,
        other => panic!("expected StartProcessing, got {other:?}"),
    }
}

fn eid(id: &str) -> EventId {
    EventId::new(id).expect("a valid event id")
}

/// A claim of `id` without ordering.
async fn claim(s: &dyn IdempotencyStore, id: &str, ttl: Duration) -> Result<Claim, StoreError> {
    s.claim(&ClaimRequest::new(&eid(id), ttl, HOUR)).await
}

/// A completion of `id` without ordering.
async fn complete(
    s: &dyn IdempotencyStore,
    id: &str,
    token: &ClaimToken,
    done_ttl: Duration,
) -> Result<Fenced, StoreError> {
    s.complete(&eid(id), token, &Completion::new(done_ttl))
        .await
}

async fn release(
    s: &dyn IdempotencyStore,
    id: &str,
    token: &ClaimToken,
) -> Result<Fenced, StoreError> {
    s.release(&eid(id), token, None).await
}

/// Claims and completes `id`.
async fn handle(s: &dyn IdempotencyStore, id: &str, done_ttl: Duration) {
    let t = started(claim(s, id, MINUTE).await.unwrap());
    assert_eq!(
        complete(s, id, &t, done_ttl).await.unwrap(),
        Fenced::Applied
    );
}

#[tokio::test]
async fn claim_in_progress_complete_then_duplicate() {
    let d = dir();
    let s = FileStore::open(d.path().join("s.redb")).unwrap();
    let t = started(claim(&s, "e1", MINUTE).await.unwrap());
    assert_eq!(claim(&s, "e1", MINUTE).await.unwrap(), Claim::InProgress);
    assert_eq!(complete(&s, "e1", &t, HOUR).await.unwrap(), Fenced::Applied);
    assert_eq!(
        claim(&s, "e1", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
    // Completing twice changes nothing: the claim is gone.
    assert_eq!(
        complete(&s, "e1", &t, HOUR).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        claim(&s, "e1", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
    started(claim(&s, "e2", MINUTE).await.unwrap());
    assert_eq!(s.len().unwrap(), 2);
}

#[tokio::test]
async fn release_lets_the_retry_run_and_fences_the_old_token() {
    let d = dir();
    let s = FileStore::open(d.path().join("s.redb")).unwrap();
    let t1 = started(claim(&s, "e1", MINUTE).await.unwrap());
    assert_eq!(release(&s, "e1", &t1).await.unwrap(), Fenced::Applied);
    assert_eq!(s.len().unwrap(), 0);
    let t2 = started(claim(&s, "e1", MINUTE).await.unwrap());
    assert_ne!(t1, t2);
    assert_eq!(release(&s, "e1", &t1).await.unwrap(), Fenced::Superseded);
    assert_eq!(
        complete(&s, "e1", &t1, HOUR).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(claim(&s, "e1", MINUTE).await.unwrap(), Claim::InProgress);
    // Tokens of other stores, or forged ones, fence nothing.
    for foreign in ["mem:1", "file:0", "file:x", ""] {
        let foreign = ClaimToken::from_string(foreign.to_owned());
        assert_eq!(
            complete(&s, "e1", &foreign, HOUR).await.unwrap(),
            Fenced::Superseded
        );
        assert_eq!(
            release(&s, "e1", &foreign).await.unwrap(),
            Fenced::Superseded
        );
    }
    assert_eq!(
        complete(&s, "e1", &t2, HOUR).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(
        claim(&s, "e1", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
}

#[tokio::test]
async fn an_expired_claim_is_taken_over_and_its_late_completion_fenced() {
    let d = dir();
    let clock = ManualClock::new(t0());
    let s = open(&d.path().join("s.redb"), &clock);
    let t1 = started(claim(&s, "e1", Duration::from_secs(10)).await.unwrap());
    clock.advance(Duration::from_secs(9));
    assert_eq!(claim(&s, "e1", MINUTE).await.unwrap(), Claim::InProgress);
    clock.advance(Duration::from_secs(2));
    let t2 = started(claim(&s, "e1", MINUTE).await.unwrap());
    assert_eq!(
        complete(&s, "e1", &t1, HOUR).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(release(&s, "e1", &t1).await.unwrap(), Fenced::Superseded);
    assert_eq!(claim(&s, "e1", MINUTE).await.unwrap(), Claim::InProgress);
    assert_eq!(
        complete(&s, "e1", &t2, HOUR).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(
        claim(&s, "e1", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
    assert_eq!(s.len().unwrap(), 1);
}

#[tokio::test]
async fn handled_entries_expire_after_the_done_ttl_and_are_purged() {
    let d = dir();
    let clock = ManualClock::new(t0());
    let s = open(&d.path().join("s.redb"), &clock);
    for i in 0..20 {
        handle(&s, &format!("h{i}"), HOUR).await;
    }
    // Claims nobody settles (a crashed handler's) go too, once their processing TTL is over.
    for i in 0..5 {
        started(claim(&s, &format!("c{i}"), MINUTE).await.unwrap());
    }
    assert_eq!(s.len().unwrap(), 25);
    clock.advance(HOUR - Duration::from_secs(1));
    assert_eq!(
        claim(&s, "h0", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
    assert_eq!(s.len().unwrap(), 20, "the expired claims were purged");
    clock.advance(Duration::from_secs(2));
    started(claim(&s, "h0", MINUTE).await.unwrap());
    // One write purges every expired entry (they are few), whether or not its event returns.
    assert_eq!(s.len().unwrap(), 1);
}

#[tokio::test]
async fn what_was_handled_stays_handled_across_a_reopen_and_claims_expire_on_the_wall_clock() {
    let d = dir();
    let path = d.path().join("s.redb");
    let clock = ManualClock::new(t0());
    let s = open(&path, &clock);
    handle(&s, "done", HOUR).await;
    started(claim(&s, "busy", Duration::from_secs(30)).await.unwrap());
    drop(s);
    // The process was "down" for 20 s: the claim has 10 s left.
    clock.advance(Duration::from_secs(20));
    let s = open(&path, &clock);
    assert_eq!(
        claim(&s, "done", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
    assert_eq!(claim(&s, "busy", MINUTE).await.unwrap(), Claim::InProgress);
    drop(s);
    clock.advance(Duration::from_secs(11));
    let s = open(&path, &clock);
    assert_eq!(s.len().unwrap(), 1, "the expired claim was purged at open");
    started(claim(&s, "busy", MINUTE).await.unwrap());
    assert_eq!(
        claim(&s, "done", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_id_start_exactly_one() {
    let d = dir();
    let s = Arc::new(FileStore::open(d.path().join("s.redb")).unwrap());
    for round in 0..20 {
        let id = format!("same-{round}");
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (s, id) = (s.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                claim(&s, &id, MINUTE).await.unwrap()
            }));
        }
        let mut starts = 0;
        for t in tasks {
            match t.await.unwrap() {
                Claim::StartProcessing { .. } => starts += 1,
                Claim::InProgress => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(starts, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_are_each_settled_once() {
    let d = dir();
    let s = Arc::new(FileStore::open(d.path().join("s.redb")).unwrap());
    let mut tasks = Vec::new();
    for i in 0..400 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("e{}", i % 100);
            match claim(&s, &id, MINUTE).await.unwrap() {
                Claim::StartProcessing { token: t, .. } => {
                    assert_eq!(complete(&s, &id, &t, HOUR).await.unwrap(), Fenced::Applied);
                    1
                }
                _ => 0,
            }
        }));
    }
    let mut handled = 0;
    for t in tasks {
        handled += t.await.unwrap();
    }
    assert_eq!(handled, 100);
    for i in 0..100 {
        assert_eq!(
            claim(&s, &format!("e{i}"), MINUTE).await.unwrap(),
            Claim::AlreadyHandled
        );
    }
}

#[tokio::test]
async fn at_capacity_the_oldest_handled_go_first_never_an_in_progress_claim() {
    let d = dir();
    let clock = ManualClock::new(t0());
    let s = FileStore::new(
        FileStoreConfig::new(d.path().join("s.redb"))
            .capacity(4)
            .clock(clock.clone()),
    )
    .unwrap();
    let busy = started(claim(&s, "busy", HOUR).await.unwrap());
    for id in ["h1", "h2", "h3"] {
        handle(&s, id, HOUR).await;
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(s.len().unwrap(), 4);
    started(claim(&s, "n1", HOUR).await.unwrap());
    started(claim(&s, "n2", HOUR).await.unwrap());
    assert_eq!(s.len().unwrap(), 4);
    assert_eq!(claim(&s, "h3", HOUR).await.unwrap(), Claim::AlreadyHandled);
    assert_eq!(claim(&s, "busy", HOUR).await.unwrap(), Claim::InProgress);
    // h1 and h2 were forgotten, oldest first: h1's claim now evicts h3, the last handled one.
    started(claim(&s, "h1", HOUR).await.unwrap());
    assert_eq!(s.len().unwrap(), 4);
    // Only in-progress claims are left: a new one is refused, nothing is evicted.
    assert!(matches!(
        claim(&s, "h2", HOUR).await,
        Err(StoreError::Full(4))
    ));
    assert_eq!(claim(&s, "busy", HOUR).await.unwrap(), Claim::InProgress);
    assert_eq!(
        complete(&s, "busy", &busy, HOUR).await.unwrap(),
        Fenced::Applied
    );
    // A completion makes an evictable entry again.
    started(claim(&s, "h2", HOUR).await.unwrap());
    assert_eq!(s.len().unwrap(), 4);
}

#[tokio::test]
async fn a_lowered_capacity_trims_the_oldest_handled_at_open() {
    let d = dir();
    let path = d.path().join("s.redb");
    let clock = ManualClock::new(t0());
    let s = open(&path, &clock);
    started(claim(&s, "busy", HOUR).await.unwrap());
    for i in 0..9 {
        handle(&s, &format!("h{i}"), HOUR).await;
        clock.advance(Duration::from_secs(1));
    }
    drop(s);
    let s = FileStore::new(FileStoreConfig::new(&path).capacity(5).clock(clock.clone())).unwrap();
    assert_eq!(s.len().unwrap(), 5);
    assert_eq!(claim(&s, "busy", HOUR).await.unwrap(), Claim::InProgress);
    for i in 5..9 {
        assert_eq!(
            claim(&s, &format!("h{i}"), HOUR).await.unwrap(),
            Claim::AlreadyHandled
        );
    }
}

#[tokio::test]
async fn a_second_open_of_the_file_in_this_process_is_refused_until_the_first_is_dropped() {
    let d = dir();
    let path = d.path().join("s.redb");
    let first = FileStore::open(&path).unwrap();
    handle(&first, "e1", HOUR).await;
    let err = FileStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, FileStoreError::Locked { path: p } if *p == path),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("already open") && msg.contains("s.redb"),
        "{msg}"
    );
    // The refused opener changed nothing.
    assert_eq!(
        claim(&first, "e1", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
    drop(first);
    let second = FileStore::open(&path).unwrap();
    assert_eq!(
        claim(&second, "e1", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_refused_and_left_unchanged() {
    let d = dir();
    let path = d.path().join("notes.txt");
    let content = "not a database\n".repeat(500);
    std::fs::write(&path, &content).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, FileStoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
    // A missing directory is an error too, not a panic.
    let err = FileStore::open(d.path().join("no/such/dir/s.redb")).unwrap_err();
    assert!(matches!(err, FileStoreError::Open { .. }), "{err:?}");
}
