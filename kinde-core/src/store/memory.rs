//! The embedded default store: bounded, TTL-expiring, sharded, no setup.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Claim, ClaimToken, Fenced, IdempotencyStore, StoreError};

/// Sizing of a [`MemoryStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryStoreConfig {
    /// Most entries (in progress + handled) kept; at capacity the oldest handled entries are
    /// evicted first, never an in-progress claim. Default 1 000 000.
    pub capacity: usize,
    /// Independent locks the entries are spread over. Default 16.
    pub shards: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            shards: 16,
        }
    }
}

impl MemoryStoreConfig {
    /// Sets the capacity.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }
}

/// `deadline` in milliseconds since the store's epoch; `token` 0 means handled.
#[derive(Debug, Clone, Copy)]
struct Entry {
    deadline: u64,
    token: u64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Arc<str>, Entry>,
    /// Handled entries in completion order: expiry and eviction both take from the front.
    handled: VecDeque<(Arc<str>, u64)>,
    last_warned: Option<Instant>,
}

impl Shard {
    /// Removes the front handled record; returns whether it removed a live entry.
    fn pop_handled(&mut self) -> Option<bool> {
        let (key, deadline) = self.handled.pop_front()?;
        let live = matches!(self.map.get(&key), Some(e) if e.token == 0 && e.deadline == deadline);
        if live {
            self.map.remove(&key);
        }
        Some(live)
    }

    /// Drops expired handled entries; returns how many live entries went.
    fn purge_expired(&mut self, now: u64) -> usize {
        let mut removed = 0;
        while self.handled.front().is_some_and(|(_, d)| *d <= now) {
            if self.pop_handled() == Some(true) {
                removed += 1;
            }
        }
        removed
    }

    /// Makes room for one entry by evicting the oldest handled one.
    fn evict_one(&mut self) -> bool {
        while let Some(live) = self.pop_handled() {
            if live {
                return true;
            }
        }
        false
    }
}

/// An in-process [`IdempotencyStore`]: right for one receiver process. Several receivers behind
/// a load balancer need a shared store (Redis), since each process only sees its own claims.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// Entries held across all shards.
    len: AtomicUsize,
    hasher: RandomState,
    epoch: Instant,
    next_token: AtomicU64,
    capacity: usize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(MemoryStoreConfig::default())
    }
}

impl MemoryStore {
    /// A store with this sizing (capacity and shards are raised to at least 1).
    pub fn new(config: MemoryStoreConfig) -> Self {
        let shards = config.shards.clamp(1, config.capacity.max(1));
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            len: AtomicUsize::new(0),
            hasher: RandomState::new(),
            epoch: Instant::now(),
            next_token: AtomicU64::new(1),
            capacity: config.capacity.max(1),
        }
    }

    /// Entries currently held (in progress and handled, expired ones not yet purged included).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn shard_index(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % self.shards.len()
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[self.shard_index(key)])
    }

    /// At capacity: evicts the oldest handled entry of the claiming shard, else of another
    /// shard (one lock at a time). Never an in-progress claim.
    fn make_room(&self, own: &mut Shard, own_index: usize) -> Result<(), StoreError> {
        if self.len.load(Ordering::Relaxed) < self.capacity {
            return Ok(());
        }
        let mut evicted = own.evict_one();
        if !evicted {
            for (i, other) in self.shards.iter().enumerate() {
                if i != own_index {
                    if let Ok(mut other) = other.try_lock() {
                        if other.evict_one() {
                            evicted = true;
                            break;
                        }
                    }
                }
            }
        }
        if !evicted {
            return Err(StoreError::Full(self.capacity));
        }
        self.len.fetch_sub(1, Ordering::Relaxed);
        let warn = own
            .last_warned
            .is_none_or(|t| t.elapsed() > Duration::from_secs(60));
        if warn {
            own.last_warned = Some(Instant::now());
            tracing::warn!(
                capacity = self.capacity,
                "in-memory idempotency store at capacity: evicting the oldest handled events (a \
                 very late retry of one could run again); raise the capacity or use the Redis store"
            );
        }
        Ok(())
    }

    fn token_of(token: &ClaimToken) -> Option<u64> {
        token.as_str().strip_prefix("mem:")?.parse().ok()
    }

    fn claim_sync(&self, event_id: &str, ttl: Duration) -> Result<Claim, StoreError> {
        let now = self.now();
        let index = self.shard_index(event_id);
        let mut shard = lock(&self.shards[index]);
        let purged = shard.purge_expired(now);
        self.len.fetch_sub(purged, Ordering::Relaxed);
        match shard.map.get(event_id) {
            Some(e) if e.deadline > now && e.token == 0 => return Ok(Claim::AlreadyHandled),
            Some(e) if e.deadline > now => return Ok(Claim::InProgress),
            _ => {}
        }
        let key: Arc<str> = match shard.map.get_key_value(event_id) {
            Some((k, _)) => k.clone(),
            None => {
                self.make_room(&mut shard, index)?;
                self.len.fetch_add(1, Ordering::Relaxed);
                Arc::from(event_id)
            }
        };
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let deadline = now + ttl.as_millis() as u64;
        shard.map.insert(key, Entry { deadline, token });
        Ok(Claim::StartProcessing(ClaimToken::from_string(format!(
            "mem:{token}"
        ))))
    }
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, event_id: &str, processing_ttl: Duration) -> Result<Claim, StoreError> {
        self.claim_sync(event_id, processing_ttl)
    }

    async fn complete(
        &self,
        event_id: &str,
        token: &ClaimToken,
        done_ttl: Duration,
    ) -> Result<Fenced, StoreError> {
        let Some(token) = Self::token_of(token) else {
            return Ok(Fenced::Superseded);
        };
        let now = self.now();
        let mut shard = self.shard(event_id);
        let Some((key, entry)) = shard.map.get_key_value(event_id) else {
            return Ok(Fenced::Superseded);
        };
        if entry.token != token {
            return Ok(Fenced::Superseded);
        }
        let key = key.clone();
        let deadline = now + done_ttl.as_millis() as u64;
        shard.map.insert(key.clone(), Entry { deadline, token: 0 });
        shard.handled.push_back((key, deadline));
        Ok(Fenced::Applied)
    }

    async fn release(&self, event_id: &str, token: &ClaimToken) -> Result<Fenced, StoreError> {
        let Some(token) = Self::token_of(token) else {
            return Ok(Fenced::Superseded);
        };
        let mut shard = self.shard(event_id);
        match shard.map.get(event_id) {
            Some(e) if e.token == token => {
                shard.map.remove(event_id);
                self.len.fetch_sub(1, Ordering::Relaxed);
                Ok(Fenced::Applied)
            }
            _ => Ok(Fenced::Superseded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    fn token(c: Claim) -> ClaimToken {
        match c {
            Claim::StartProcessing(t) => t,
            other => panic!("expected StartProcessing, got {other:?}"),
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
            Claim::StartProcessing(_)
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
            Claim::StartProcessing(_)
        ));
    }

    #[tokio::test]
    async fn at_capacity_the_oldest_handled_go_first_never_in_progress() {
        let s = MemoryStore::new(MemoryStoreConfig {
            capacity: 4,
            shards: 1,
        });
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
            Claim::StartProcessing(_)
        ));
        assert_eq!(s.claim("busy", LONG).await.unwrap(), Claim::InProgress);
        assert_eq!(
            s.complete("busy", &busy, LONG).await.unwrap(),
            Fenced::Applied
        );
    }

    #[tokio::test]
    async fn capacity_is_the_whole_store_not_a_share_per_shard() {
        let s = MemoryStore::new(MemoryStoreConfig {
            capacity: 100,
            shards: 16,
        });
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
        let s = MemoryStore::new(MemoryStoreConfig {
            capacity: 2,
            shards: 1,
        });
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
                async move { s.claim("same", LONG).await.unwrap() },
            ));
        }
        let mut started = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Claim::StartProcessing(_)) {
                started += 1;
            }
        }
        assert_eq!(started, 1);
    }
}
