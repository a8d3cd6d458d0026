//! One shard of the memory store: event entries, entity records and failure counts, each with
//! its expiry queue.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::store::Applied;

/// The token of a handled entry.
pub(super) const HANDLED: u64 = 0;
/// The token of a parked entry (never expires, never evicted: the parked set is bounded).
pub(super) const PARKED: u64 = u64::MAX;

/// `deadline` in milliseconds since the store's epoch; `token` is the claim's, or [`HANDLED`],
/// or [`PARKED`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) deadline: u64,
    pub(super) token: u64,
}

/// A claim on an entity by the event holding `token`.
#[derive(Debug, Clone, Copy)]
pub(super) struct EntityClaim {
    pub(super) token: u64,
    pub(super) timestamp: i64,
    pub(super) deadline: u64,
}

/// What ordering keeps per entity. Lives until `deadline` (at least the done TTL after its
/// last completion, and at least as long as a claim on it).
#[derive(Debug, Clone, Copy)]
pub(super) struct EntityRecord {
    pub(super) applied: Option<Applied>,
    pub(super) in_progress: Option<EntityClaim>,
    pub(super) deadline: u64,
}

/// Failed attempts of one event.
#[derive(Debug, Clone, Copy)]
pub(super) struct FailRecord {
    pub(super) attempts: u32,
    pub(super) first_ms: i64,
    pub(super) deadline: u64,
}

/// The hasher of the store's maps and of the shard choice: foldhash, seeded per store. The keys
/// are ids and entity keys of events whose signature was verified (an attacker cannot choose
/// them), so SipHash's stronger flood resistance buys nothing here, and costs about a dozen
/// hashes of the id per delivery.
pub(super) type Hasher = foldhash::fast::RandomState;

#[derive(Default)]
pub(super) struct Shard {
    pub(super) map: HashMap<Arc<str>, Entry, Hasher>,
    /// Handled entries in completion order: expiry and eviction both take from the front.
    pub(super) handled: VecDeque<(Arc<str>, u64)>,
    pub(super) entities: HashMap<Arc<str>, EntityRecord, Hasher>,
    /// Entity records by the deadline they had when queued (stale items are skipped).
    entity_expiry: VecDeque<(Arc<str>, u64)>,
    pub(super) failures: HashMap<Arc<str>, FailRecord, Hasher>,
    failure_expiry: VecDeque<(Arc<str>, u64)>,
}

impl Shard {
    /// Removes the front handled record; returns whether it removed a live entry.
    fn pop_handled(&mut self) -> Option<bool> {
        let (key, deadline) = self.handled.pop_front()?;
        let live =
            matches!(self.map.get(&key), Some(e) if e.token == HANDLED && e.deadline == deadline);
        if live {
            self.map.remove(&key);
        }
        Some(live)
    }

    /// Drops expired handled entries and expired entity records (both count in the store's
    /// length; returns how many went) and expired failure counts.
    pub(super) fn purge_expired(&mut self, now: u64) -> usize {
        let mut removed = 0;
        while self.handled.front().is_some_and(|(_, d)| *d <= now) {
            if self.pop_handled() == Some(true) {
                removed += 1;
            }
        }
        while self.entity_expiry.front().is_some_and(|(_, d)| *d <= now) {
            let Some((key, _)) = self.entity_expiry.pop_front() else {
                break;
            };
            if self.entities.get(&key).is_some_and(|r| r.deadline <= now) {
                self.entities.remove(&key);
                removed += 1;
            }
        }
        while self.failure_expiry.front().is_some_and(|(_, d)| *d <= now) {
            let Some((key, _)) = self.failure_expiry.pop_front() else {
                break;
            };
            if self.failures.get(&key).is_some_and(|r| r.deadline <= now) {
                self.failures.remove(&key);
            }
        }
        removed
    }

    /// Makes room for one entry by evicting the oldest handled one.
    pub(super) fn evict_one(&mut self) -> bool {
        while let Some(live) = self.pop_handled() {
            if live {
                return true;
            }
        }
        false
    }

    /// Records `key` handled until `deadline` (it must already hold an entry, or a reserved unit).
    pub(super) fn mark_handled(&mut self, key: Arc<str>, deadline: u64) {
        self.map.insert(
            key.clone(),
            Entry {
                deadline,
                token: HANDLED,
            },
        );
        self.handled.push_back((key, deadline));
    }

    /// Sets an entity record's deadline (never earlier than it was) and queues its expiry.
    pub(super) fn keep_entity(&mut self, key: &Arc<str>, record: EntityRecord) {
        self.entity_expiry.push_back((key.clone(), record.deadline));
        self.entities.insert(key.clone(), record);
    }

    /// Counts a failure of `key`; returns the attempts so far.
    pub(super) fn count_failure(&mut self, key: &Arc<str>, at_ms: i64, deadline: u64) -> u32 {
        let record = self.failures.entry(key.clone()).or_insert(FailRecord {
            attempts: 0,
            first_ms: at_ms,
            deadline,
        });
        record.attempts = record.attempts.saturating_add(1);
        record.deadline = deadline;
        let attempts = record.attempts;
        self.failure_expiry.push_back((key.clone(), deadline));
        attempts
    }
}
