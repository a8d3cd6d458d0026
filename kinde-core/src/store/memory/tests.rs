//! The memory store: protocol, expiry, capacity and eviction (order, warning, contention).

use super::*;
use futures_util::FutureExt as _;

const LONG: Duration = Duration::from_secs(3600);

fn token(c: Claim) -> ClaimToken {
    match c {
        Claim::StartProcessing { token, .. } => token,
        other => panic!("expected StartProcessing, got {other:?}"),
    }
}

fn id(s: &str) -> EventId {
    EventId::new(s).unwrap()
}

/// The protocol without ordering or parking, by string ids (the tests below predate both).
impl MemoryStore {
    fn claim_sync(&self, event_id: &str, ttl: Duration) -> Result<Claim, StoreError> {
        self.claim_request(&ClaimRequest::new(&id(event_id), ttl, LONG))
    }

    async fn claim(&self, event_id: &str, ttl: Duration) -> Result<Claim, StoreError> {
        self.claim_sync(event_id, ttl)
    }

    async fn complete(
        &self,
        event_id: &str,
        token: &ClaimToken,
        done_ttl: Duration,
    ) -> Result<Fenced, StoreError> {
        IdempotencyStore::complete(self, &id(event_id), token, &Completion::new(done_ttl)).await
    }

    async fn release(&self, event_id: &str, token: &ClaimToken) -> Result<Fenced, StoreError> {
        IdempotencyStore::release(self, &id(event_id), token, None).await
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.shard_index(key)])
    }
}

#[tokio::test]
async fn claim_complete_then_duplicate() {
    let s = MemoryStore::default();
    let t = token(s.claim("e1", LONG).await.unwrap());
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::InProgress);
    assert_eq!(s.complete("e1", &t, LONG).await.unwrap(), Fenced::Applied);
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::AlreadyHandled);
    assert!(matches!(
        s.claim("e2", LONG).await.unwrap(),
        Claim::StartProcessing { .. }
    ));
}

#[tokio::test]
async fn release_lets_the_retry_run() {
    let s = MemoryStore::default();
    let t = token(s.claim("e1", LONG).await.unwrap());
    assert_eq!(s.release("e1", &t).await.unwrap(), Fenced::Applied);
    let t2 = token(s.claim("e1", LONG).await.unwrap());
    assert_ne!(t, t2);
    // The old token no longer controls the claim.
    assert_eq!(s.release("e1", &t).await.unwrap(), Fenced::Superseded);
    assert_eq!(
        s.complete("e1", &t, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::InProgress);
}

#[tokio::test]
async fn an_expired_processing_claim_is_taken_over_and_fenced() {
    let s = MemoryStore::default();
    let t1 = token(s.claim("e1", Duration::from_millis(20)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(40)).await;
    let t2 = token(s.claim("e1", LONG).await.unwrap());
    assert_eq!(
        s.complete("e1", &t1, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::InProgress);
    assert_eq!(s.complete("e1", &t2, LONG).await.unwrap(), Fenced::Applied);
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::AlreadyHandled);
}

#[tokio::test]
async fn handled_entries_expire_after_their_ttl() {
    let s = MemoryStore::default();
    let t = token(s.claim("e1", LONG).await.unwrap());
    s.complete("e1", &t, Duration::from_millis(20))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(matches!(
        s.claim("e1", LONG).await.unwrap(),
        Claim::StartProcessing { .. }
    ));
}

#[tokio::test]
async fn at_capacity_the_oldest_handled_go_first_never_in_progress() {
    let s = MemoryStore::new(MemoryStoreConfig::default().capacity(4).shards(1));
    let busy = token(s.claim("busy", LONG).await.unwrap());
    for id in ["h1", "h2", "h3"] {
        let t = token(s.claim(id, LONG).await.unwrap());
        s.complete(id, &t, LONG).await.unwrap();
    }
    assert_eq!(s.len(), 4);
    // New claims evict h1, then h2; the in-progress claim survives.
    token(s.claim("n1", LONG).await.unwrap());
    token(s.claim("n2", LONG).await.unwrap());
    assert_eq!(s.len(), 4);
    assert!(matches!(
        s.claim("h1", LONG).await.unwrap(),
        Claim::StartProcessing { .. }
    ));
    assert_eq!(s.claim("busy", LONG).await.unwrap(), Claim::InProgress);
    assert_eq!(
        s.complete("busy", &busy, LONG).await.unwrap(),
        Fenced::Applied
    );
}

#[tokio::test]
async fn capacity_is_the_whole_store_not_a_share_per_shard() {
    let s = MemoryStore::new(MemoryStoreConfig::default().capacity(100).shards(16));
    for i in 0..100 {
        let id = format!("e{i}");
        let t = token(s.claim(&id, LONG).await.unwrap());
        s.complete(&id, &t, LONG).await.unwrap();
    }
    assert_eq!(s.len(), 100);
    for i in 0..100 {
        assert_eq!(
            s.claim(&format!("e{i}"), LONG).await.unwrap(),
            Claim::AlreadyHandled
        );
    }
    token(s.claim("one-more", LONG).await.unwrap());
    assert_eq!(s.len(), 100);
}

#[tokio::test]
async fn full_of_in_progress_claims_is_an_error_not_an_eviction() {
    let s = MemoryStore::new(MemoryStoreConfig::default().capacity(2).shards(1));
    token(s.claim("a", LONG).await.unwrap());
    token(s.claim("b", LONG).await.unwrap());
    assert!(matches!(s.claim("c", LONG).await, Err(StoreError::Full(2))));
    assert_eq!(s.claim("a", LONG).await.unwrap(), Claim::InProgress);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_id_start_exactly_one() {
    let s = Arc::new(MemoryStore::default());
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(
            async move { s.claim_sync("same", LONG).unwrap() },
        ));
    }
    let mut started = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Claim::StartProcessing { .. }) {
            started += 1;
        }
    }
    assert_eq!(started, 1);
}

// --- Eviction: order, warning, contention ------------------------------------------------------

/// `claim` then `complete`, synchronously (the memory store never awaits).
fn handle_now(s: &MemoryStore, id: &str) {
    let t = token(s.claim_sync(id, LONG).unwrap());
    let done = s.complete(id, &t, LONG).now_or_never().expect("no await");
    assert_eq!(done.unwrap(), Fenced::Applied);
}

/// `n` ids that land in shard `shard` of `s`.
fn ids_in_shard(s: &MemoryStore, shard: usize, prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|id| s.shard_index(id) == shard)
        .take(n)
        .collect()
}

#[test]
fn with_one_shard_eviction_follows_completion_order_exactly() {
    let s = MemoryStore::new(MemoryStoreConfig::default().capacity(6).shards(1));
    let busy = token(s.claim_sync("busy", LONG).unwrap());
    // Completed out of claim order: the completion order is what counts.
    let (t3, t1, t2) = (
        token(s.claim_sync("h3", LONG).unwrap()),
        token(s.claim_sync("h1", LONG).unwrap()),
        token(s.claim_sync("h2", LONG).unwrap()),
    );
    for (id, t) in [("h1", &t1), ("h2", &t2), ("h3", &t3)] {
        assert_eq!(
            s.complete(id, t, LONG).now_or_never().unwrap().unwrap(),
            Fenced::Applied
        );
    }
    handle_now(&s, "h4");
    handle_now(&s, "h5");
    assert_eq!(s.len(), 6);
    for (n, evicted) in ["h1", "h2", "h3", "h4", "h5"].iter().enumerate() {
        token(s.claim_sync(&format!("new{n}"), LONG).unwrap());
        assert_eq!(s.len(), 6);
        for (m, id) in ["h1", "h2", "h3", "h4", "h5"].iter().enumerate() {
            let held = matches!(s.shard(id).map.get(*id), Some(e) if e.token == 0);
            assert_eq!(held, m > n, "after evicting {evicted}: {id}");
        }
    }
    // Only in-progress claims are left: nothing more is evicted.
    assert!(matches!(
        s.claim_sync("one-more", LONG),
        Err(StoreError::Full(6))
    ));
    assert_eq!(s.claim_sync("busy", LONG).unwrap(), Claim::InProgress);
    assert_eq!(
        s.complete("busy", &busy, LONG)
            .now_or_never()
            .unwrap()
            .unwrap(),
        Fenced::Applied
    );
}

#[test]
fn a_shard_without_handled_entries_evicts_the_oldest_of_another() {
    let s = MemoryStore::new(MemoryStoreConfig::default().capacity(4).shards(2));
    let a = ids_in_shard(&s, 0, "a", 3);
    let b = ids_in_shard(&s, 1, "b", 3);
    token(s.claim_sync(&a[0], LONG).unwrap());
    for id in &b {
        handle_now(&s, id);
    }
    // Shard 0 holds one in-progress claim and no handled entry: its claims evict in shard 1,
    // oldest first.
    token(s.claim_sync(&a[1], LONG).unwrap());
    token(s.claim_sync(&a[2], LONG).unwrap());
    assert_eq!(s.len(), 4);
    assert_eq!(s.claim_sync(&b[2], LONG).unwrap(), Claim::AlreadyHandled);
    assert!(!s.shard(&b[0]).map.contains_key(b[0].as_str()));
    assert!(!s.shard(&b[1]).map.contains_key(b[1].as_str()));
    for id in &a {
        assert_eq!(s.claim_sync(id, LONG).unwrap(), Claim::InProgress);
    }
}

/// Captures what a tracing subscriber writes on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock_bytes(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lock_bytes(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The WARN lines logged while `f` runs on this thread.
fn warnings_during(f: impl FnOnce()) -> Vec<String> {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(lock_bytes(&out.0).clone()).unwrap();
    text.lines()
        .filter(|l| l.contains("WARN"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn evicting_warns_once_per_interval_naming_the_capacity() {
    let fill = |s: &MemoryStore| {
        for i in 0..3 {
            handle_now(s, &format!("h{i}"));
        }
    };
    // Default interval (a minute): 100 evictions, one warning.
    let s = MemoryStore::new(MemoryStoreConfig::default().capacity(3).shards(1));
    assert!(warnings_during(|| fill(&s)).is_empty(), "no eviction yet");
    let lines = warnings_during(|| {
        for i in 0..100 {
            handle_now(&s, &format!("new{i}"));
        }
    });
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("at capacity") && lines[0].contains("capacity=3"),
        "{lines:?}"
    );
    // With no interval every eviction warns: the limit above is what kept it to one.
    let mut s = MemoryStore::new(MemoryStoreConfig::default().capacity(3).shards(1));
    s.warn_interval = Duration::ZERO;
    fill(&s);
    let lines = warnings_during(|| {
        for i in 0..5 {
            handle_now(&s, &format!("new{i}"));
        }
    });
    assert_eq!(lines.len(), 5, "{lines:#?}");
}

/// At capacity, every handled entry sits in one shard and the other shards hold in-progress
/// claims only: every new claim must evict in that one shard, all threads at once. There are
/// as many handled entries as new claims, so each claim has one to evict: a `Full` would be
/// spurious (it was, when other shards were only `try_lock`ed).
#[test]
fn at_capacity_concurrent_claims_never_fail_while_a_handled_entry_exists() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 64;
    const HANDLED: usize = THREADS * PER_THREAD;
    const BUSY: usize = 64;
    for round in 0..20 {
        let s = Arc::new(MemoryStore::new(
            MemoryStoreConfig::default()
                .capacity(HANDLED + BUSY)
                .shards(16),
        ));
        for id in ids_in_shard(&s, 0, "old", HANDLED) {
            handle_now(&s, &id);
        }
        let busy: Vec<String> = (0..)
            .map(|i| format!("busy{i}"))
            .filter(|id| s.shard_index(id) != 0)
            .take(BUSY)
            .collect();
        for id in &busy {
            token(s.claim_sync(id, LONG).unwrap());
        }
        let start = Arc::new(std::sync::Barrier::new(THREADS));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (s, start) = (s.clone(), start.clone());
                let ids: Vec<String> = (0..)
                    .map(|i| format!("new-{t}-{i}"))
                    .filter(|id| s.shard_index(id) != 0)
                    .take(PER_THREAD)
                    .collect();
                std::thread::spawn(move || {
                    start.wait();
                    ids.iter()
                        .filter(|id| match s.claim_sync(id, LONG) {
                            Ok(Claim::StartProcessing { .. }) => false,
                            Err(StoreError::Full(_)) => true,
                            other => panic!("{id}: {other:?}"),
                        })
                        .count()
                })
            })
            .collect();
        let full: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(full, 0, "round {round}: {full} spurious `store full`");
        assert_eq!(s.len(), HANDLED + BUSY, "round {round}");
        // Every handled entry went for a new claim; the in-progress ones all stayed.
        assert!(lock(&s.shards[0]).map.is_empty(), "round {round}");
        for id in &busy {
            assert_eq!(s.claim_sync(id, LONG).unwrap(), Claim::InProgress);
        }
    }
}

/// Claims that complete right away keep handled entries around: at capacity, with every
/// thread claiming at once, not one claim may be refused, and the bound holds throughout.
#[test]
fn steady_traffic_at_capacity_is_never_refused_and_never_exceeds_it() {
    const THREADS: usize = 8;
    const CAPACITY: usize = 64;
    let s = Arc::new(MemoryStore::new(
        MemoryStoreConfig::default().capacity(CAPACITY).shards(16),
    ));
    let start = Arc::new(std::sync::Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut peak = 0;
                for i in 0..5_000 {
                    let id = format!("e-{t}-{i}");
                    match s.claim_sync(&id, LONG) {
                        Ok(Claim::StartProcessing { token: tok, .. }) => {
                            peak = peak.max(s.len());
                            let done = MemoryStore::complete(&s, &id, &tok, LONG)
                                .now_or_never()
                                .unwrap();
                            assert_eq!(done.unwrap(), Fenced::Applied);
                        }
                        other => panic!("{id}: {other:?}"),
                    }
                }
                peak
            })
        })
        .collect();
    let peak = workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .max()
        .unwrap();
    assert!(peak <= CAPACITY, "held {peak} > {CAPACITY}");
    assert_eq!(s.len(), CAPACITY);
}

#[tokio::test]
async fn the_store_protocol_holds() {
    crate::testing::check_store_protocol(&MemoryStore::default()).await;
    // With one shard, every entity and event shares a lock: the same answers.
    crate::testing::check_store_protocol(&MemoryStore::new(MemoryStoreConfig::default().shards(1)))
        .await;
}

#[tokio::test]
async fn entity_records_count_and_are_never_evicted() {
    let s = MemoryStore::new(MemoryStoreConfig::default().capacity(3).shards(1));
    let claim = |event: &str, key: &'static str, ts: i64| {
        let event = id(event);
        let answer = s.claim_request(
            &ClaimRequest::new(&event, LONG, LONG)
                .entity(Some(crate::store::Entity { key, timestamp: ts })),
        );
        std::future::ready(answer)
    };
    // One event and its entity: two entries.
    let t = token(claim("e1", "user:1", 10).await.unwrap());
    let done = Completion::new(LONG).entity(
        Some(crate::store::Entity {
            key: "user:1",
            timestamp: 10,
        }),
        false,
    );
    IdempotencyStore::complete(&s, &id("e1"), &t, &done)
        .await
        .unwrap();
    assert_eq!(s.len(), 2);
    // A second entity needs two more: the handled event goes, the entity record stays.
    token(claim("e2", "user:2", 10).await.unwrap());
    assert_eq!(s.len(), 3);
    assert!(s.shard("user:1").entities.contains_key("user:1"));
    assert!(!s.shard("e1").map.contains_key("e1"));
    // Nothing left to evict: a third entity is refused, not an entity forgotten.
    assert!(matches!(
        claim("e3", "user:3", 10).await,
        Err(StoreError::Full(3))
    ));
    // The first entity's record is intact (a superseded event needs an entry of its own, so at
    // this capacity it waits: 503 and Kinde retries).
    let applied = s.shard("user:1").entities["user:1"].applied;
    assert_eq!(applied.map(|a| a.timestamp), Some(10));
    assert!(matches!(
        claim("e0", "user:1", 5).await,
        Err(StoreError::Full(3))
    ));
}
