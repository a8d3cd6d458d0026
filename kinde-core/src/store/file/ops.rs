//! The protocol's operations, each a step inside one write transaction: the same answers as
//! the memory store (the reference), on the tables of [`super::tables`].

use redb::{ReadableTable, ReadableTableMetadata, StorageError};

use super::tables::{EntityClaim, EntityRecord, Tables, HANDLED_TOKEN, PARKED_TOKEN};
use crate::event::EventId;
use crate::store::{Applied, Claim, Failed, Fenced, ParkLimits, ParkedEvent};

/// A claim to make, owned (it crosses to the writer thread). Times are milliseconds.
#[derive(Debug)]
pub(super) struct ClaimOp {
    pub(super) id: EventId,
    pub(super) processing_ttl: u64,
    pub(super) done_ttl: u64,
    /// The entity key and the event's timestamp (µs), with ordering.
    pub(super) entity: Option<(String, i64)>,
    pub(super) replay: bool,
}

/// A completion, owned.
#[derive(Debug)]
pub(super) struct CompleteOp {
    pub(super) done_ttl: u64,
    pub(super) entity: Option<(String, i64)>,
    pub(super) deletes: bool,
}

/// A failure, owned.
#[derive(Debug)]
pub(super) struct FailOp {
    pub(super) park_after: u32,
    pub(super) limits: ParkLimits,
    pub(super) done_ttl: u64,
    pub(super) event_type: String,
    pub(super) token: String,
    pub(super) error: String,
    pub(super) at_ms: i64,
}

/// What a claim step did.
pub(super) enum ClaimStep {
    /// The claim's answer; `evicted` says whether a handled entry went to make room.
    Answer { claim: Claim, evicted: bool },
    /// At capacity, and every entry is a claim, a parked event or an entity record.
    Full,
}

impl Tables<'_> {
    /// Claims `op.id` (and its entity) with `token` (neither 0 nor `u64::MAX`), evicting the
    /// oldest handled entries when the new entries would pass `capacity`.
    pub(super) fn claim(
        &mut self,
        now: u64,
        op: &ClaimOp,
        token: u64,
        capacity: u64,
    ) -> Result<ClaimStep, StorageError> {
        let id = op.id.as_str();
        let answer = |claim| {
            Ok(ClaimStep::Answer {
                claim,
                evicted: false,
            })
        };
        let mut current = self.events.get(id)?.map(|v| v.value());
        match current {
            Some((_, PARKED_TOKEN)) if !op.replay => return answer(Claim::Parked),
            // Parked and replayed: its slot is reused.
            Some((_, PARKED_TOKEN)) => {}
            Some((deadline, HANDLED_TOKEN)) if deadline > now => {
                return answer(Claim::AlreadyHandled)
            }
            Some((deadline, _)) if deadline > now => return answer(Claim::InProgress),
            // Expired (not purged yet): gone, so that it is not evicted to make room for itself.
            Some(_) => {
                self.remove_event(id)?;
                current = None;
            }
            None => {}
        }
        // The entity's record, and whether this event loses to a later one of it.
        let mut entity = None;
        let mut superseded = false;
        if let Some((key, timestamp)) = &op.entity {
            let (record, stored) = self.entity(key, now)?;
            let applied_later = record
                .and_then(|r| r.applied)
                .is_some_and(|a| a.timestamp > *timestamp);
            let running = record
                .and_then(|r| r.in_progress)
                .filter(|c| c.deadline > now);
            if applied_later || running.is_some_and(|c| c.timestamp > *timestamp) {
                superseded = true;
            } else if running.is_some() {
                return answer(Claim::InProgress);
            } else {
                entity = Some((key.as_str(), *timestamp, record, stored));
            }
        }
        let needed = u64::from(current.is_none())
            + u64::from(entity.is_some_and(|(_, _, _, stored)| !stored));
        let Some(evicted) = self.make_room(needed, capacity)? else {
            return Ok(ClaimStep::Full);
        };
        if superseded {
            self.set_event(id, (now.saturating_add(op.done_ttl), HANDLED_TOKEN))?;
            return Ok(ClaimStep::Answer {
                claim: Claim::Superseded,
                evicted,
            });
        }
        let deadline = now.saturating_add(op.processing_ttl);
        self.set_event(id, (deadline, token))?;
        let mut previous = None;
        if let Some((key, timestamp, record, _)) = entity {
            previous = record.and_then(|r| r.applied);
            self.set_entity(
                key,
                EntityRecord {
                    deadline: record.map_or(deadline, |r| r.deadline.max(deadline)),
                    applied: previous,
                    in_progress: Some(EntityClaim {
                        token,
                        timestamp,
                        deadline,
                    }),
                },
            )?;
        }
        Ok(ClaimStep::Answer {
            claim: Claim::StartProcessing {
                token: super::token_string(token),
                previous,
            },
            evicted,
        })
    }

    /// Marks `id` handled until `now + done_ttl` if `token` still holds its claim; forgets its
    /// failures and parked record; applies it to its entity (the latest wins).
    pub(super) fn complete(
        &mut self,
        now: u64,
        id: &str,
        token: u64,
        op: &CompleteOp,
    ) -> Result<Fenced, StorageError> {
        if !self.claimed_by(id, token)? {
            return Ok(Fenced::Superseded);
        }
        let deadline = now.saturating_add(op.done_ttl);
        self.set_event(id, (deadline, HANDLED_TOKEN))?;
        self.remove_failures(id)?;
        self.remove_parked(id)?;
        if let Some((key, timestamp)) = &op.entity {
            // A record that expired while the claim ran long comes back: over capacity at worst
            // by this one entry.
            let (old, _) = self.entity(key, now)?;
            let applied = match old.and_then(|r| r.applied) {
                Some(a) if a.timestamp > *timestamp => a,
                _ => Applied {
                    timestamp: *timestamp,
                    deleted: op.deletes,
                },
            };
            let record = EntityRecord {
                deadline: old.map_or(deadline, |r| r.deadline.max(deadline)),
                applied: Some(applied),
                in_progress: old.and_then(|r| r.in_progress).filter(|c| c.token != token),
            };
            self.set_entity(key, record)?;
        }
        Ok(Fenced::Applied)
    }

    /// Drops the claim on `id` (and the entity's), if `token` still holds it.
    pub(super) fn release(
        &mut self,
        now: u64,
        id: &str,
        token: u64,
        entity: Option<&str>,
    ) -> Result<Fenced, StorageError> {
        if !self.claimed_by(id, token)? {
            return Ok(Fenced::Superseded);
        }
        self.clear_entity_claim(entity, token, now)?;
        self.remove_event(id)?;
        Ok(Fenced::Applied)
    }

    /// Counts a failure of `id` if `token` still holds its claim, then releases it, or parks it
    /// on the `park_after`-th failure (unless the parked set is full).
    pub(super) fn fail(
        &mut self,
        now: u64,
        id: &EventId,
        token: u64,
        entity: Option<&str>,
        op: &FailOp,
    ) -> Result<Failed, StorageError> {
        let key = id.as_str();
        if !self.claimed_by(key, token)? {
            return Ok(Failed::Superseded);
        }
        self.clear_entity_claim(entity, token, now)?;
        let (attempts, first_ms) = self.failures_of(key, now)?.unwrap_or((0, op.at_ms));
        let counted = attempts.saturating_add(1);
        self.set_failures(key, (counted, first_ms), now.saturating_add(op.done_ttl))?;
        if counted < op.park_after.max(1) {
            self.remove_event(key)?;
            return Ok(Failed::Released { attempts: counted });
        }
        let old = self.parked_event(id)?;
        let attempts = counted.max(old.as_ref().map_or(0, |p| p.attempts.saturating_add(1)));
        let record = ParkedEvent {
            event_id: id.clone(),
            event_type: op.event_type.clone(),
            token: op.token.clone(),
            attempts,
            last_error: op.error.clone(),
            first_attempt_ms: old.as_ref().map_or(first_ms, |p| p.first_attempt_ms),
            last_attempt_ms: op.at_ms,
        };
        let count = self.parked.len()? + u64::from(old.is_none());
        let old_size = old.as_ref().map_or(0, size_of);
        let bytes = self.parked_bytes()?.saturating_sub(old_size) + size_of(&record);
        if count > limit(op.limits.events) || bytes > limit(op.limits.bytes) {
            self.remove_event(key)?;
            return Ok(Failed::ParkFull { attempts });
        }
        let value = (
            record.event_type.as_str(),
            record.token.as_str(),
            record.attempts,
            record.last_error.as_str(),
            record.first_attempt_ms,
            record.last_attempt_ms,
        );
        self.parked.insert(key, value)?;
        self.set_parked_bytes(bytes)?;
        self.set_event(key, (PARKED_TOKEN, PARKED_TOKEN))?;
        Ok(Failed::Parked { attempts })
    }

    /// Forgets a parked event: its record, and its parked state; whether there was a record.
    pub(super) fn unpark(&mut self, id: &str) -> Result<bool, StorageError> {
        let parked_state = self
            .events
            .get(id)?
            .is_some_and(|v| v.value().1 == PARKED_TOKEN);
        if parked_state {
            self.remove_event(id)?;
        }
        self.remove_parked(id)
    }

    /// One parked event.
    pub(super) fn parked_event(&self, id: &EventId) -> Result<Option<ParkedEvent>, StorageError> {
        Ok(self
            .parked
            .get(id.as_str())?
            .map(|v| parked_from(id.clone(), v.value())))
    }

    /// Every parked event, oldest first (by first failed attempt, then id).
    pub(super) fn parked_list(&self) -> Result<Vec<ParkedEvent>, StorageError> {
        let mut all = Vec::new();
        for row in self.parked.iter()? {
            let (id, value) = row?;
            // Only valid ids are ever stored; a row that is not one is skipped, not a panic.
            if let Ok(id) = EventId::new(id.value()) {
                all.push(parked_from(id, value.value()));
            }
        }
        all.sort_by(|a, b| {
            (a.first_attempt_ms, a.event_id.as_str())
                .cmp(&(b.first_attempt_ms, b.event_id.as_str()))
        });
        Ok(all)
    }

    /// Whether `token` (a claim token) holds the claim on `id`. A claim past its processing
    /// TTL that nobody took over still counts: its holder may settle it.
    fn claimed_by(&self, id: &str, token: u64) -> Result<bool, StorageError> {
        let current = self.events.get(id)?.map(|v| v.value());
        Ok(current.is_some_and(|(_, t)| t == token && t != HANDLED_TOKEN && t != PARKED_TOKEN))
    }

    fn remove_parked(&mut self, id: &str) -> Result<bool, StorageError> {
        let Some(size) = self.parked.remove(id)?.map(|v| {
            let (ty, token, _, error, _, _) = v.value();
            (ty.len() + token.len() + error.len() + id.len()) as u64
        }) else {
            return Ok(false);
        };
        let bytes = self.parked_bytes()?.saturating_sub(size);
        self.set_parked_bytes(bytes)?;
        Ok(true)
    }
}

fn parked_from(event_id: EventId, v: (&str, &str, u32, &str, i64, i64)) -> ParkedEvent {
    let (event_type, token, attempts, last_error, first_attempt_ms, last_attempt_ms) = v;
    ParkedEvent {
        event_id,
        event_type: event_type.to_owned(),
        token: token.to_owned(),
        attempts,
        last_error: last_error.to_owned(),
        first_attempt_ms,
        last_attempt_ms,
    }
}

fn size_of(p: &ParkedEvent) -> u64 {
    u64::try_from(p.size()).unwrap_or(u64::MAX)
}

fn limit(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
