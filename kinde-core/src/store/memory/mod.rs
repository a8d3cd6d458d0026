//! The embedded default store: bounded, TTL-expiring, sharded, no setup.

mod parked;
mod shard;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use self::parked::ParkedSet;
use self::shard::{EntityClaim, EntityRecord, Entry, Shard, HANDLED, PARKED};
use super::{
    millis, Applied, Claim, ClaimRequest, ClaimToken, Completion, Failed, Failure, Fenced,
    IdempotencyStore, ParkedEvent, StoreError,
};
use crate::event::EventId;

/// Sizing of a [`MemoryStore`].
///
/// ```
/// use kinde_core::MemoryStoreConfig;
/// let config = MemoryStoreConfig::default().capacity(100_000).shards(8);
/// assert_eq!(config.capacity_limit(), 100_000);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryStoreConfig {
    capacity: usize,
    shards: usize,
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
    /// Sets the most entries kept (events in progress or handled, and entity records with
    /// ordering on; default 1 000 000). At capacity the oldest handled events are evicted
    /// first (see [`MemoryStore`]), never a claim or an entity record.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the number of independent locks the entries are spread over (default 16).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// The capacity.
    pub fn capacity_limit(&self) -> usize {
        self.capacity
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
/// At most `capacity` entries are held (events in progress and handled, about 160 bytes each,
/// and, with ordering on, one record per entity seen within the done TTL). At capacity, each
/// new claim evicts a handled event and a warning is logged (at most once a minute): the oldest
/// one of the claim's shard, else the oldest one of the next shard that has one (every shard is
/// locked in turn, one lock at a time, so a claim never fails while a handled entry exists
/// anywhere). The ids are spread over the shards at random, so each shard's oldest is among the
/// store's oldest; with one shard the order is exact. Claims and entity records younger than
/// the done TTL are never evicted: a store full of them answers [`StoreError::Full`] (503, Kinde
/// retries). Failure counts (with parking on) live beside the entries, until the done TTL; parked
/// events are bounded by [`ParkLimits`](super::ParkLimits).
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// Entries held across all shards, plus the ones claims have reserved and are inserting:
    /// never more than `capacity`.
    len: AtomicUsize,
    hasher: shard::Hasher,
    epoch: Instant,
    next_token: AtomicU64,
    capacity: usize,
    /// When the last "at capacity" warning was logged: ms since `epoch` plus 1, 0 for never.
    last_warned: AtomicU64,
    warn_interval: Duration,
    /// Locked after a shard, never before one.
    parked: Mutex<ParkedSet>,
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

/// A lock of a shard, whatever a panic elsewhere left (the maps stay consistent: every change
/// is made by code that cannot panic halfway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    /// A store with this sizing (capacity and shards are raised to at least 1).
    pub fn new(config: MemoryStoreConfig) -> Self {
        let shards = config.shards.clamp(1, config.capacity.max(1));
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            len: AtomicUsize::new(0),
            hasher: shard::Hasher::default(),
            epoch: Instant::now(),
            next_token: AtomicU64::new(1),
            capacity: config.capacity.max(1),
            last_warned: AtomicU64::new(0),
            warn_interval: Duration::from_secs(60),
            parked: Mutex::default(),
        }
    }

    /// Entries currently held (expired ones not yet purged included).
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

    /// The shard of an event: its entity's when ordering applies, so one lock covers both.
    fn shard_index(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % self.shards.len()
    }

    /// Takes one unit of `len` for a new entry, if the store is below capacity.
    fn try_reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn unreserve(&self, units: usize) {
        if units > 0 {
            self.len.fetch_sub(units, Ordering::AcqRel);
        }
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
        token
            .as_str()
            .strip_prefix("mem:")?
            .parse()
            .ok()
            .filter(|t| *t != HANDLED && *t != PARKED)
    }

    fn claim_request(&self, req: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        enum Take<'a> {
            /// Record the event handled: a later event of its entity won.
            Superseded,
            /// Claim it (and its entity, with the entity's record before this claim).
            Start(Option<(super::Entity<'a>, Option<EntityRecord>)>),
        }
        let id = req.event_id.as_str();
        let index = self.shard_index(req.entity.map_or(id, |e| e.key));
        // Units of `len` this claim holds for the entries it is about to insert.
        let mut reserved = 0usize;
        let mut evicted = false;
        let claim = loop {
            let now = self.now();
            let mut shard = lock(&self.shards[index]);
            let purged = shard.purge_expired(now);
            self.unreserve(purged);
            match shard.map.get(id) {
                Some(e) if e.token == HANDLED && e.deadline > now => break Claim::AlreadyHandled,
                Some(e) if e.token == PARKED && !req.replay => break Claim::Parked,
                Some(e) if e.token != PARKED && e.token != HANDLED && e.deadline > now => {
                    break Claim::InProgress
                }
                _ => {}
            }
            let take = match req.entity {
                None => Take::Start(None),
                Some(entity) => {
                    let record = shard.entities.get(entity.key).copied();
                    let applied_later = record
                        .and_then(|r| r.applied)
                        .is_some_and(|a| a.timestamp > entity.timestamp);
                    let running = record
                        .and_then(|r| r.in_progress)
                        .filter(|c| c.deadline > now);
                    if applied_later || running.is_some_and(|c| c.timestamp > entity.timestamp) {
                        Take::Superseded
                    } else if running.is_some() {
                        break Claim::InProgress;
                    } else {
                        Take::Start(Some((entity, record)))
                    }
                }
            };
            // New entries: the event's (unless an expired or parked one is reused), and the
            // entity's record.
            let needed = usize::from(!shard.map.contains_key(id))
                + usize::from(matches!(take, Take::Start(Some((_, None)))));
            while reserved < needed {
                if self.try_reserve() {
                    reserved += 1;
                } else if shard.evict_one() {
                    (reserved, evicted) = (reserved + 1, true);
                } else {
                    break;
                }
            }
            if reserved < needed {
                drop(shard);
                let Some(evicted_one) = self.room_elsewhere(index) else {
                    self.unreserve(reserved);
                    return Err(StoreError::Full(self.capacity));
                };
                (reserved, evicted) = (reserved + 1, evicted | evicted_one);
                continue; // look again: the event may have been claimed meanwhile
            }
            self.unreserve(reserved - needed);
            reserved = 0;
            let key: Arc<str> = match shard.map.get_key_value(id) {
                Some((k, _)) => k.clone(),
                None => Arc::from(id),
            };
            let Take::Start(entity) = take else {
                shard.mark_handled(key, now + millis(req.done_ttl));
                break Claim::Superseded;
            };
            let token = self.next_token.fetch_add(1, Ordering::Relaxed);
            let deadline = now + millis(req.processing_ttl);
            shard.map.insert(key, Entry { deadline, token });
            let previous = entity.and_then(|(entity, record)| {
                let previous = record.and_then(|r| r.applied);
                shard.keep_entity(
                    &Arc::from(entity.key),
                    EntityRecord {
                        applied: previous,
                        in_progress: Some(EntityClaim {
                            token,
                            timestamp: entity.timestamp,
                            deadline,
                        }),
                        deadline: record.map_or(deadline, |r| r.deadline.max(deadline)),
                    },
                );
                previous
            });
            break Claim::StartProcessing {
                token: ClaimToken::from_string(format!("mem:{token}")),
                previous,
            };
        };
        self.unreserve(reserved);
        if evicted {
            self.warn_evicting();
        }
        Ok(claim)
    }

    /// The shard of an event (by its entity when given) if `token` still holds its claim.
    fn claimed(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
    ) -> Option<(MutexGuard<'_, Shard>, u64)> {
        let token = Self::token_of(token)?;
        let shard = lock(&self.shards[self.shard_index(entity.unwrap_or(event_id))]);
        matches!(shard.map.get(event_id.as_str()), Some(e) if e.token == token)
            .then_some((shard, token))
    }

    /// Clears the entity's claim if `token` holds it.
    fn clear_entity_claim(shard: &mut Shard, entity: Option<&str>, token: u64) {
        if let Some(record) = entity.and_then(|k| shard.entities.get_mut(k)) {
            if record.in_progress.is_some_and(|c| c.token == token) {
                record.in_progress = None;
            }
        }
    }

    fn remove_entry(&self, shard: &mut Shard, event_id: &EventId) {
        if shard.map.remove(event_id.as_str()).is_some() {
            self.unreserve(1);
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        self.claim_request(request)
    }

    async fn complete(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        completion: &Completion<'_>,
    ) -> Result<Fenced, StoreError> {
        let entity_key = completion.entity.map(|e| e.key);
        let Some((mut shard, token)) = self.claimed(event_id, token, entity_key) else {
            return Ok(Fenced::Superseded);
        };
        let now = self.now();
        let deadline = now + millis(completion.done_ttl);
        let key = shard
            .map
            .get_key_value(event_id.as_str())
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(event_id.as_str()));
        shard.mark_handled(key.clone(), deadline);
        if !shard.failures.is_empty() {
            shard.failures.remove(&key);
        }
        if let Some(entity) = completion.entity {
            let entity_key: Arc<str> = Arc::from(entity.key);
            let old = shard.entities.get(entity.key).copied();
            if old.is_none() {
                // Its record expired while the claim ran long: it comes back, over capacity at
                // worst by this one entry.
                self.len.fetch_add(1, Ordering::AcqRel);
            }
            let applied = match old.and_then(|r| r.applied) {
                Some(a) if a.timestamp > entity.timestamp => a,
                _ => Applied {
                    timestamp: entity.timestamp,
                    deleted: completion.deletes,
                },
            };
            let in_progress = old.and_then(|r| r.in_progress).filter(|c| c.token != token);
            shard.keep_entity(
                &entity_key,
                EntityRecord {
                    applied: Some(applied),
                    in_progress,
                    deadline: old.map_or(deadline, |r| r.deadline.max(deadline)),
                },
            );
        }
        lock(&self.parked).remove(event_id);
        Ok(Fenced::Applied)
    }

    async fn release(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
    ) -> Result<Fenced, StoreError> {
        let Some((mut shard, token)) = self.claimed(event_id, token, entity) else {
            return Ok(Fenced::Superseded);
        };
        Self::clear_entity_claim(&mut shard, entity, token);
        self.remove_entry(&mut shard, event_id);
        Ok(Fenced::Applied)
    }

    async fn fail(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
        failure: &Failure<'_>,
    ) -> Result<Failed, StoreError> {
        let Some((mut shard, token)) = self.claimed(event_id, token, entity) else {
            return Ok(Failed::Superseded);
        };
        Self::clear_entity_claim(&mut shard, entity, token);
        let key: Arc<str> = Arc::from(event_id.as_str());
        let deadline = self.now() + millis(failure.done_ttl);
        let counted = shard.count_failure(&key, failure.at_ms, deadline);
        if counted < failure.park_after.max(1) {
            self.remove_entry(&mut shard, event_id);
            return Ok(Failed::Released { attempts: counted });
        }
        let first_ms = shard
            .failures
            .get(&key)
            .map_or(failure.at_ms, |f| f.first_ms);
        let mut parked = lock(&self.parked);
        let previous = parked.get(event_id).map_or(0, |p| p.attempts);
        let attempts = counted.max(previous.saturating_add(1));
        let record = ParkedEvent {
            event_id: event_id.clone(),
            event_type: failure.event_type.to_owned(),
            token: failure.token.to_owned(),
            attempts,
            last_error: failure.error.to_owned(),
            first_attempt_ms: parked
                .get(event_id)
                .map_or(first_ms, |p| p.first_attempt_ms),
            last_attempt_ms: failure.at_ms,
        };
        if !parked.park(record, failure.limits) {
            drop(parked);
            self.remove_entry(&mut shard, event_id);
            return Ok(Failed::ParkFull { attempts });
        }
        shard.map.insert(
            key,
            Entry {
                deadline: u64::MAX,
                token: PARKED,
            },
        );
        Ok(Failed::Parked { attempts })
    }

    async fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        Ok(lock(&self.parked).list())
    }

    async fn parked_event(&self, event_id: &EventId) -> Result<Option<ParkedEvent>, StoreError> {
        Ok(lock(&self.parked).get(event_id).cloned())
    }

    async fn unpark(&self, event_id: &EventId, entity: Option<&str>) -> Result<bool, StoreError> {
        let mut shard = lock(&self.shards[self.shard_index(entity.unwrap_or(event_id))]);
        if shard
            .map
            .get(event_id.as_str())
            .is_some_and(|e| e.token == PARKED)
        {
            self.remove_entry(&mut shard, event_id);
        }
        drop(shard);
        Ok(lock(&self.parked).remove(event_id))
    }
}

#[cfg(test)]
mod tests;
