//! The schema of the store file, the tables opened in one write transaction, and what keeps
//! them consistent: expiry, eviction and the capacity count.
//!
//! Every record lives in a table of its own, with an index by deadline where it expires; the
//! protocol's steps ([`super::ops`]) update a record and its index together, in the
//! transaction of the event's state, so nothing can disagree after a crash.

use redb::{ReadableTable, ReadableTableMetadata, StorageError, Table, TableDefinition};

/// The schema this version writes and understands, stored under [`SCHEMA_KEY`] in [`META`].
/// Version 1 (claims and completions only) is upgraded in place: version 2 adds tables.
pub(super) const SCHEMA_VERSION: u64 = 2;
/// The key of the schema version in [`META`].
pub(super) const SCHEMA_KEY: &str = "kinde-webhooks.schema";
/// The key of the bytes held by parked events (tokens, errors, types, ids) in [`META`].
pub(super) const PARKED_BYTES_KEY: &str = "kinde-webhooks.parked-bytes";

/// Facts about the file itself.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Event id → (deadline in wall-clock ms since the Unix epoch, token): a claim's token, or
/// [`HANDLED_TOKEN`], or [`PARKED_TOKEN`] (deadline `u64::MAX`). A deadline in the past is an
/// expired entry, treated as absent.
pub(super) const EVENTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("events");
/// (deadline, event id) of every handled entry: expiry and eviction take from the front.
pub(super) const HANDLED: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("handled_by_deadline");
/// (deadline, event id) of every in-progress claim, so that claims left by a crash go once
/// expired even if their event never comes back.
pub(super) const CLAIMS: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("claims_by_deadline");
/// Entity key → [`EntityValue`]: what ordering keeps per entity.
pub(super) const ENTITIES: TableDefinition<&str, EntityValue> = TableDefinition::new("entities");
/// (deadline, entity key) of every entity record.
pub(super) const ENTITY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("entities_by_deadline");
/// Event id → (failed attempts, first failure in unix ms, deadline).
pub(super) const FAILURES: TableDefinition<&str, (u32, i64, u64)> =
    TableDefinition::new("failures");
/// (deadline, event id) of every failure count.
pub(super) const FAILURE_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("failures_by_deadline");
/// Event id → [`ParkedValue`]: the parked events (never expire; bounded by the park limits).
pub(super) const PARKED: TableDefinition<&str, ParkedValue> = TableDefinition::new("parked");

/// (deadline, applied (timestamp µs, deleted), in progress (token, timestamp µs, deadline)).
pub(super) type EntityValue = (u64, Option<(i64, bool)>, Option<(u64, i64, u64)>);
/// (event type, raw token, attempts, last error, first attempt ms, last attempt ms).
pub(super) type ParkedValue = (&'static str, &'static str, u32, &'static str, i64, i64);

/// The token of a handled entry.
pub(super) const HANDLED_TOKEN: u64 = 0;
/// The token (and deadline) of a parked entry: never expires, never evicted.
pub(super) const PARKED_TOKEN: u64 = u64::MAX;

/// An entity record as used: `deadline` is at least the done TTL after its last completion
/// and at least as late as a claim on it.
#[derive(Debug, Clone, Copy)]
pub(super) struct EntityRecord {
    pub(super) deadline: u64,
    pub(super) applied: Option<crate::store::Applied>,
    pub(super) in_progress: Option<EntityClaim>,
}

/// A claim on an entity by the event holding `token`.
#[derive(Debug, Clone, Copy)]
pub(super) struct EntityClaim {
    pub(super) token: u64,
    pub(super) timestamp: i64,
    pub(super) deadline: u64,
}

/// The protocol's tables, opened in one write transaction.
pub(super) struct Tables<'txn> {
    pub(super) meta: Table<'txn, &'static str, u64>,
    pub(super) events: Table<'txn, &'static str, (u64, u64)>,
    handled: Table<'txn, (u64, &'static str), ()>,
    claims: Table<'txn, (u64, &'static str), ()>,
    pub(super) entities: Table<'txn, &'static str, EntityValue>,
    entity_expiry: Table<'txn, (u64, &'static str), ()>,
    pub(super) failures: Table<'txn, &'static str, (u32, i64, u64)>,
    failure_expiry: Table<'txn, (u64, &'static str), ()>,
    pub(super) parked: Table<'txn, &'static str, ParkedValue>,
}

impl<'txn> Tables<'txn> {
    /// Opens (creating the missing ones) every table of the schema.
    pub(super) fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            meta: txn.open_table(META)?,
            events: txn.open_table(EVENTS)?,
            handled: txn.open_table(HANDLED)?,
            claims: txn.open_table(CLAIMS)?,
            entities: txn.open_table(ENTITIES)?,
            entity_expiry: txn.open_table(ENTITY_EXPIRY)?,
            failures: txn.open_table(FAILURES)?,
            failure_expiry: txn.open_table(FAILURE_EXPIRY)?,
            parked: txn.open_table(PARKED)?,
        })
    }

    /// Entries counted against the capacity: events (in progress, handled, parked) and entity
    /// records, expired ones not yet purged included.
    pub(super) fn len(&self) -> Result<u64, StorageError> {
        Ok(self.events.len()? + self.entities.len()?)
    }

    /// Makes room for `needed` new entries under `capacity` by evicting handled entries,
    /// oldest first; `None` when only claims, parked events and entity records are left (none
    /// is ever evicted), else whether anything was evicted.
    pub(super) fn make_room(
        &mut self,
        needed: u64,
        capacity: u64,
    ) -> Result<Option<bool>, StorageError> {
        let mut evicted = false;
        while self.len()? + needed > capacity {
            if !self.evict_oldest_handled()? {
                return Ok(None);
            }
            evicted = true;
        }
        Ok(Some(evicted))
    }

    /// Sets `id`'s state, keeping the deadline indexes in step with it.
    pub(super) fn set_event(&mut self, id: &str, state: (u64, u64)) -> Result<(), StorageError> {
        let old = self.events.insert(id, state)?.map(|v| v.value());
        if let Some(old) = old {
            self.unindex_event(id, old)?;
        }
        match state.1 {
            HANDLED_TOKEN => self.handled.insert((state.0, id), ())?,
            PARKED_TOKEN => None,
            _ => self.claims.insert((state.0, id), ())?,
        };
        Ok(())
    }

    /// Forgets `id`'s state.
    pub(super) fn remove_event(&mut self, id: &str) -> Result<(), StorageError> {
        let old = self.events.remove(id)?.map(|v| v.value());
        if let Some(old) = old {
            self.unindex_event(id, old)?;
        }
        Ok(())
    }

    fn unindex_event(
        &mut self,
        id: &str,
        (deadline, token): (u64, u64),
    ) -> Result<(), StorageError> {
        match token {
            HANDLED_TOKEN => self.handled.remove((deadline, id))?,
            PARKED_TOKEN => None,
            _ => self.claims.remove((deadline, id))?,
        };
        Ok(())
    }

    /// The entity's record unless it expired, and whether a row is stored (an expired one
    /// included: its slot is reused).
    pub(super) fn entity(
        &self,
        key: &str,
        now: u64,
    ) -> Result<(Option<EntityRecord>, bool), StorageError> {
        let Some((deadline, applied, in_progress)) = self.entities.get(key)?.map(|v| v.value())
        else {
            return Ok((None, false));
        };
        let record = EntityRecord {
            deadline,
            applied: applied
                .map(|(timestamp, deleted)| crate::store::Applied { timestamp, deleted }),
            in_progress: in_progress.map(|(token, timestamp, deadline)| EntityClaim {
                token,
                timestamp,
                deadline,
            }),
        };
        Ok(((deadline > now).then_some(record), true))
    }

    pub(super) fn set_entity(&mut self, key: &str, r: EntityRecord) -> Result<(), StorageError> {
        let value: EntityValue = (
            r.deadline,
            r.applied.map(|a| (a.timestamp, a.deleted)),
            r.in_progress.map(|c| (c.token, c.timestamp, c.deadline)),
        );
        if let Some(old) = self.entities.insert(key, value)?.map(|v| v.value().0) {
            self.entity_expiry.remove((old, key))?;
        }
        self.entity_expiry.insert((r.deadline, key), ())?;
        Ok(())
    }

    /// Clears the entity's claim if the event holding `token` has it.
    pub(super) fn clear_entity_claim(
        &mut self,
        key: Option<&str>,
        token: u64,
        now: u64,
    ) -> Result<(), StorageError> {
        let Some(key) = key else { return Ok(()) };
        if let (Some(mut record), _) = self.entity(key, now)? {
            if record.in_progress.is_some_and(|c| c.token == token) {
                record.in_progress = None;
                self.set_entity(key, record)?;
            }
        }
        Ok(())
    }

    /// `id`'s failure count unless it expired: (attempts, first failure ms).
    pub(super) fn failures_of(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Option<(u32, i64)>, StorageError> {
        Ok(self
            .failures
            .get(id)?
            .map(|v| v.value())
            .filter(|&(_, _, deadline)| deadline > now)
            .map(|(attempts, first, _)| (attempts, first)))
    }

    pub(super) fn set_failures(
        &mut self,
        id: &str,
        (attempts, first_ms): (u32, i64),
        deadline: u64,
    ) -> Result<(), StorageError> {
        if let Some(old) = self.failures.insert(id, (attempts, first_ms, deadline))? {
            self.failure_expiry.remove((old.value().2, id))?;
        }
        self.failure_expiry.insert((deadline, id), ())?;
        Ok(())
    }

    pub(super) fn remove_failures(&mut self, id: &str) -> Result<(), StorageError> {
        if let Some(old) = self.failures.remove(id)? {
            self.failure_expiry.remove((old.value().2, id))?;
        }
        Ok(())
    }

    /// Bytes held by parked events (see [`ParkedEvent::size`](crate::store::ParkedEvent::size)).
    pub(super) fn parked_bytes(&self) -> Result<u64, StorageError> {
        Ok(self.meta.get(PARKED_BYTES_KEY)?.map_or(0, |v| v.value()))
    }

    pub(super) fn set_parked_bytes(&mut self, bytes: u64) -> Result<(), StorageError> {
        self.meta.insert(PARKED_BYTES_KEY, bytes)?;
        Ok(())
    }

    /// Removes up to `limit` records whose deadline is at or before `now` (handled entries past
    /// the done TTL, claims past the processing TTL, entity records and failure counts past
    /// theirs); returns how many went.
    pub(super) fn purge_expired(&mut self, now: u64, limit: usize) -> Result<usize, StorageError> {
        let mut removed = 0;
        for index in [&mut self.handled, &mut self.claims] {
            while removed < limit {
                let Some((deadline, id)) = pop_due(index, now)? else {
                    break;
                };
                let current = self.events.get(id.as_str())?.map(|v| v.value());
                if current.is_some_and(|(d, _)| d == deadline) {
                    self.events.remove(id.as_str())?;
                }
                removed += 1;
            }
        }
        while removed < limit {
            let Some((deadline, key)) = pop_due(&mut self.entity_expiry, now)? else {
                break;
            };
            let current = self.entities.get(key.as_str())?.map(|v| v.value().0);
            if current == Some(deadline) {
                self.entities.remove(key.as_str())?;
            }
            removed += 1;
        }
        while removed < limit {
            let Some((deadline, id)) = pop_due(&mut self.failure_expiry, now)? else {
                break;
            };
            let current = self.failures.get(id.as_str())?.map(|v| v.value().2);
            if current == Some(deadline) {
                self.failures.remove(id.as_str())?;
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Evicts handled entries, oldest first, until at most `capacity` entries are left (after
    /// the capacity was lowered); claims, parked events and entity records stay.
    pub(super) fn trim_to(&mut self, capacity: u64) -> Result<(), StorageError> {
        while self.len()? > capacity && self.evict_oldest_handled()? {}
        Ok(())
    }

    /// Removes the handled entry whose done TTL ends first; false when there is none.
    fn evict_oldest_handled(&mut self) -> Result<bool, StorageError> {
        let Some((_, id)) = pop_due(&mut self.handled, u64::MAX)? else {
            return Ok(false);
        };
        self.events.remove(id.as_str())?;
        Ok(true)
    }
}

/// Removes and returns the first record of `index` if its deadline is at or before `now`.
fn pop_due(
    index: &mut Table<'_, (u64, &'static str), ()>,
    now: u64,
) -> Result<Option<(u64, String)>, StorageError> {
    let first = index.first()?.and_then(|(key, _)| {
        let (deadline, id) = key.value();
        (deadline <= now).then(|| (deadline, id.to_owned()))
    });
    if let Some((deadline, id)) = &first {
        index.remove((*deadline, id.as_str()))?;
    }
    Ok(first)
}
