//! The schema of the store file, and each operation as a step inside one write transaction.
//!
//! Every record lives in a table of its own; the three tables of the idempotency protocol are
//! updated together in one transaction, so the indexes never disagree with `events`. Later
//! records (per-entity ordering, parked events) are further tables, written in the same
//! transaction as the completion they belong to.

use redb::{ReadableTable, ReadableTableMetadata, StorageError, Table, TableDefinition};

use crate::store::{Claim, Fenced};

/// The schema this version writes and understands, stored under [`SCHEMA_KEY`] in [`META`].
pub(super) const SCHEMA_VERSION: u64 = 1;
/// The key of the schema version in [`META`].
pub(super) const SCHEMA_KEY: &str = "kinde-webhooks.schema";

/// Facts about the file itself.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Event id → (deadline in wall-clock ms since the Unix epoch, claim token); token 0 means
/// handled. A deadline in the past is an expired entry, treated as absent.
pub(super) const EVENTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("events");
/// (deadline, event id) of every handled entry: expiry and eviction take from the front.
pub(super) const HANDLED: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("handled_by_deadline");
/// (deadline, event id) of every in-progress claim, so that claims left by a crash go once
/// expired even if their event never comes back.
pub(super) const CLAIMS: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("claims_by_deadline");

/// The token of a handled entry.
const HANDLED_TOKEN: u64 = 0;

/// What a claim step did.
pub(super) enum ClaimStep {
    /// The claim's answer; `evicted` says whether a handled entry went to make room.
    Answer { claim: Claim, evicted: bool },
    /// At capacity and every entry is an in-progress claim.
    Full,
}

/// The protocol's tables, opened in one write transaction.
pub(super) struct Tables<'txn> {
    events: Table<'txn, &'static str, (u64, u64)>,
    handled: Table<'txn, (u64, &'static str), ()>,
    claims: Table<'txn, (u64, &'static str), ()>,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            events: txn.open_table(EVENTS)?,
            handled: txn.open_table(HANDLED)?,
            claims: txn.open_table(CLAIMS)?,
        })
    }

    /// Entries held (in progress and handled, expired ones not yet purged included).
    pub(super) fn len(&self) -> Result<u64, StorageError> {
        self.events.len()
    }

    /// Claims `id` until `now + ttl` with `token` (non-zero), evicting the oldest handled entry
    /// when the store holds `capacity` entries.
    pub(super) fn claim(
        &mut self,
        now: u64,
        id: &str,
        ttl: u64,
        token: u64,
        capacity: u64,
    ) -> Result<ClaimStep, StorageError> {
        let current = self.events.get(id)?.map(|v| v.value());
        let mut evicted = false;
        match current {
            Some((deadline, HANDLED_TOKEN)) if deadline > now => {
                return Ok(ClaimStep::Answer {
                    claim: Claim::AlreadyHandled,
                    evicted,
                })
            }
            Some((deadline, _)) if deadline > now => {
                return Ok(ClaimStep::Answer {
                    claim: Claim::InProgress,
                    evicted,
                })
            }
            // Expired: its slot is reused below.
            Some(expired) => self.unindex(id, expired)?,
            None => {
                while self.events.len()? >= capacity {
                    if !self.evict_oldest_handled()? {
                        return Ok(ClaimStep::Full);
                    }
                    evicted = true;
                }
            }
        }
        let deadline = now.saturating_add(ttl);
        self.events.insert(id, (deadline, token))?;
        self.claims.insert((deadline, id), ())?;
        Ok(ClaimStep::Answer {
            claim: Claim::StartProcessing(super::token_string(token)),
            evicted,
        })
    }

    /// Marks `id` handled until `now + ttl`, if `token` still holds its claim.
    pub(super) fn complete(
        &mut self,
        now: u64,
        id: &str,
        token: u64,
        ttl: u64,
    ) -> Result<Fenced, StorageError> {
        let Some(current) = self.claimed_by(id, token)? else {
            return Ok(Fenced::Superseded);
        };
        self.unindex(id, current)?;
        let deadline = now.saturating_add(ttl);
        self.events.insert(id, (deadline, HANDLED_TOKEN))?;
        self.handled.insert((deadline, id), ())?;
        Ok(Fenced::Applied)
    }

    /// Drops the claim on `id`, if `token` still holds it.
    pub(super) fn release(&mut self, id: &str, token: u64) -> Result<Fenced, StorageError> {
        let Some(current) = self.claimed_by(id, token)? else {
            return Ok(Fenced::Superseded);
        };
        self.unindex(id, current)?;
        self.events.remove(id)?;
        Ok(Fenced::Applied)
    }

    /// Removes up to `limit` entries whose deadline is at or before `now` (handled entries past
    /// the done TTL, claims past the processing TTL); returns how many went.
    pub(super) fn purge_expired(&mut self, now: u64, limit: usize) -> Result<usize, StorageError> {
        let mut removed = 0;
        for index in [&mut self.handled, &mut self.claims] {
            while removed < limit {
                let Some((deadline, id)) = first_due(index, now)? else {
                    break;
                };
                index.remove((deadline, id.as_str()))?;
                let current = self.events.get(id.as_str())?.map(|v| v.value());
                if current.is_some_and(|(d, _)| d == deadline) {
                    self.events.remove(id.as_str())?;
                }
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Evicts handled entries, oldest first, until at most `capacity` entries are left (after
    /// the capacity was lowered); in-progress claims stay.
    pub(super) fn trim_to(&mut self, capacity: u64) -> Result<(), StorageError> {
        while self.events.len()? > capacity && self.evict_oldest_handled()? {}
        Ok(())
    }

    /// The claim on `id` as stored, if `token` (a claim token, never 0) holds it.
    fn claimed_by(&self, id: &str, token: u64) -> Result<Option<(u64, u64)>, StorageError> {
        let current = self.events.get(id)?.map(|v| v.value());
        Ok(current.filter(|&(_, t)| t == token && t != HANDLED_TOKEN))
    }

    /// Removes the index record of the stored entry `(deadline, token)` of `id`.
    fn unindex(&mut self, id: &str, (deadline, token): (u64, u64)) -> Result<(), StorageError> {
        let index = if token == HANDLED_TOKEN {
            &mut self.handled
        } else {
            &mut self.claims
        };
        index.remove((deadline, id))?;
        Ok(())
    }

    /// Removes the handled entry whose done TTL ends first; false when there is none.
    fn evict_oldest_handled(&mut self) -> Result<bool, StorageError> {
        let Some((deadline, id)) = first_due(&self.handled, u64::MAX)? else {
            return Ok(false);
        };
        self.handled.remove((deadline, id.as_str()))?;
        self.events.remove(id.as_str())?;
        Ok(true)
    }
}

/// The first record of `index` if its deadline is at or before `now`, copied out.
fn first_due(
    index: &Table<'_, (u64, &'static str), ()>,
    now: u64,
) -> Result<Option<(u64, String)>, StorageError> {
    Ok(index.first()?.and_then(|(key, _)| {
        let (deadline, id) = key.value();
        (deadline <= now).then(|| (deadline, id.to_owned()))
    }))
}
