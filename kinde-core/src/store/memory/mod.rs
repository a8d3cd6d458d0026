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
    /// evicted first (see [`MemoryStore`]), never an in-progress claim. Default 1 000 000.
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

    /// Sets the number of shards (locks).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
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
/// Everything is forgotten when the process ends: a restart lets a retry (or a replayed token)
/// of an event handled before it run again. The file store (feature `durable`) survives
/// restarts.
///
/// # Size
///
/// At most `capacity` entries are held (in progress and handled; about 160 bytes each). At
/// capacity, each new claim evicts a handled entry and a warning is logged (at most once a
/// minute): the oldest one of the claim's shard, else the oldest one of the next shard that has
/// one (every shard is locked in turn, one lock at a time, so a claim never fails while a handled
/// entry exists anywhere). The ids are spread over the shards at random, so each shard's oldest
/// is among the store's oldest; with one shard the order is exact. In-progress claims are never
/// evicted: a store full of them answers [`StoreError::Full`] (503, Kinde retries).
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// Entries held across all shards, plus the ones claims have reserved and are inserting:
    /// never more than `capacity`.
    len: AtomicUsize,
    hasher: RandomState,
    epoch: Instant,
    next_token: AtomicU64,
    capacity: usize,
    /// When the last "at capacity" warning was logged: ms since `epoch` plus 1, 0 for never.
    last_warned: AtomicU64,
    warn_interval: Duration,
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
            last_warned: AtomicU64::new(0),
            warn_interval: Duration::from_secs(60),
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

    /// Takes one unit of `len` for a new entry, if the store is below capacity.
    fn try_reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    /// At capacity, with no handled entry in the claiming shard: frees a unit of `len` for the
    /// claim in another shard, locking each in turn (the claiming shard's lock is not held, and
    /// never two at once, so claims cannot deadlock). `Some(true)` when a handled entry was
    /// evicted for it, `Some(false)` when room was found otherwise (an expiry, a release), `None`
    /// when no shard had a handled or expired entry.
    fn room_elsewhere(&self, own: usize) -> Option<bool> {
        let n = self.shards.len();
        for other in (1..n).map(|offset| (own + offset) % n) {
            if self.try_reserve() {
                return Some(false);
            }
            let mut shard = lock(&self.shards[other]);
            let purged = shard.purge_expired(self.now());
            if purged > 0 {
                // Keep one of the freed units for this claim.
                self.len.fetch_sub(purged - 1, Ordering::AcqRel);
                return Some(false);
            }
            if shard.evict_one() {
                return Some(true);
            }
        }
        self.try_reserve().then_some(false)
    }

    /// Logs that handled entries are being evicted, at most once per `warn_interval`.
    fn warn_evicting(&self) {
        let now = self.now().saturating_add(1);
        let last = self.last_warned.load(Ordering::Acquire);
        let interval = u64::try_from(self.warn_interval.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < interval {
            return;
        }
        if self
            .last_warned
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(
                capacity = self.capacity,
                "in-memory idempotency store at capacity: evicting the oldest handled events (a \
                 very late retry of one could run again); raise the capacity or use the Redis store"
            );
        }
    }

    fn token_of(token: &ClaimToken) -> Option<u64> {
        token.as_str().strip_prefix("mem:")?.parse().ok()
    }

    fn claim_sync(&self, event_id: &str, ttl: Duration) -> Result<Claim, StoreError> {
        let index = self.shard_index(event_id);
        // Whether this claim holds a unit of `len` for the entry it is about to insert.
        let mut reserved = false;
        let mut evicted = false;
        let claim = loop {
            let now = self.now();
            let mut shard = lock(&self.shards[index]);
            let purged = shard.purge_expired(now);
            self.len.fetch_sub(purged, Ordering::AcqRel);
            let live = match shard.map.get(event_id) {
                Some(e) if e.deadline > now && e.token == 0 => Some(Claim::AlreadyHandled),
                Some(e) if e.deadline > now => Some(Claim::InProgress),
                _ => None,
            };
            if let Some(answer) = live {
                // Someone claimed it while this claim made room elsewhere.
                if reserved {
                    self.len.fetch_sub(1, Ordering::AcqRel);
                }
                break answer;
            }
            let key: Arc<str> = match shard.map.get_key_value(event_id) {
                // An expired entry: its slot is reused.
                Some((k, _)) => {
                    if reserved {
                        self.len.fetch_sub(1, Ordering::AcqRel);
                    }
                    k.clone()
                }
                None => {
                    if !reserved {
                        reserved = self.try_reserve();
                    }
                    if !reserved && shard.evict_one() {
                        // The evicted entry's unit goes to this one.
                        (reserved, evicted) = (true, true);
                    }
                    if !reserved {
                        drop(shard);
                        let Some(evicted_one) = self.room_elsewhere(index) else {
                            return Err(StoreError::Full(self.capacity));
                        };
                        (reserved, evicted) = (true, evicted | evicted_one);
                        // Look again: the id may have been claimed meanwhile.
                        continue;
                    }
                    Arc::from(event_id)
                }
            };
            let token = self.next_token.fetch_add(1, Ordering::Relaxed);
            let deadline = now + ttl.as_millis() as u64;
            shard.map.insert(key, Entry { deadline, token });
            break Claim::StartProcessing(ClaimToken::from_string(format!("mem:{token}")));
        };
        if evicted {
            self.warn_evicting();
        }
        Ok(claim)
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
mod tests;
