//! The writer thread: every operation goes through it, many per transaction (group commit).
//!
//! The async side sends a [`Request`] and awaits its reply, so no store operation blocks a tokio
//! worker. The thread takes what is queued (up to [`MAX_BATCH`]), applies it in order inside one
//! write transaction and commits once, then answers every request of the batch. A batch holding
//! a completion, a failure (counted or parked), an unpark or a claim answered `Superseded` is
//! committed with an fsync before anyone is answered; a batch of other claims, releases and
//! reads is committed without one (it reaches the disk with the next fsync, at most
//! [`MAX_UNSYNCED`] later under steady traffic).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::{mpsc, oneshot};

use super::ops::{ClaimOp, ClaimStep, CompleteOp, FailOp};
use super::tables::Tables;
use crate::clock::Clock;
use crate::event::EventId;
use crate::store::{Claim, Failed, Fenced, ParkedEvent, StoreError};

/// Most requests applied in one transaction.
const MAX_BATCH: usize = 512;
/// Longest time commits go without an fsync while claims or releases keep coming.
const MAX_UNSYNCED: Duration = Duration::from_secs(1);
/// Expired entries removed per transaction, beyond one per request of the batch: expiry keeps
/// up with any insertion rate.
const PURGE_PER_BATCH: usize = 64;
/// Least time between two "at capacity" warnings.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// One operation with the channel for its answer. Times are milliseconds.
pub(super) enum Request {
    Claim {
        op: ClaimOp,
        reply: Reply<Claim>,
    },
    Complete {
        id: EventId,
        token: u64,
        op: CompleteOp,
        reply: Reply<Fenced>,
    },
    Release {
        id: EventId,
        token: u64,
        entity: Option<String>,
        reply: Reply<Fenced>,
    },
    Fail {
        id: EventId,
        token: u64,
        entity: Option<String>,
        op: FailOp,
        reply: Reply<Failed>,
    },
    Unpark {
        id: EventId,
        reply: Reply<bool>,
    },
    ParkedEvent {
        id: EventId,
        reply: Reply<Option<ParkedEvent>>,
    },
    Parked {
        reply: Reply<Vec<ParkedEvent>>,
    },
}

impl Request {
    /// Whether the request's change must be on disk before it is answered: a completion, a
    /// failure (counted, or parked), an unpark.
    fn durable(&self) -> bool {
        matches!(
            self,
            Request::Complete { .. } | Request::Fail { .. } | Request::Unpark { .. }
        )
    }
}

/// Where an operation's answer goes, and the answer once the transaction has it.
pub(super) struct Reply<T> {
    sender: oneshot::Sender<Result<T, StoreError>>,
    answer: Option<Result<T, StoreError>>,
}

impl<T> Reply<T> {
    /// A reply channel: the sender for a request, and the receiver to await.
    pub(super) fn channel() -> (Self, oneshot::Receiver<Result<T, StoreError>>) {
        let (sender, receiver) = oneshot::channel();
        let reply = Self {
            sender,
            answer: None,
        };
        (reply, receiver)
    }

    /// Sends the answer (or `failed`, when the transaction did not commit); false when the
    /// caller is gone.
    fn send(self, failed: Option<&str>) -> bool {
        let answer = match (failed, self.answer) {
            (None, Some(answer)) => answer,
            (why, _) => Err(StoreError::Unavailable(
                why.unwrap_or("the file store gave no answer")
                    .to_owned()
                    .into(),
            )),
        };
        self.sender.send(answer).is_ok()
    }
}

pub(super) struct Writer {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    capacity: u64,
    last_fsync: Instant,
    last_warned: Option<Instant>,
}

impl Writer {
    pub(super) fn new(db: Arc<Database>, clock: Arc<dyn Clock>, capacity: u64) -> Self {
        Self {
            db,
            clock,
            capacity,
            last_fsync: Instant::now(),
            last_warned: None,
        }
    }

    /// Serves requests until every sender is gone.
    pub(super) fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = requests.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.serve(&mut batch);
        }
    }

    fn serve(&mut self, batch: &mut Vec<Request>) {
        let failed = self.apply(batch).err().map(|e| {
            tracing::error!(error = %e, "file store: a write transaction failed");
            format!("file store write failed: {e}")
        });
        let failed = failed.as_deref();
        let mut abandoned = Vec::new();
        for request in batch.drain(..) {
            match request {
                Request::Claim { op, reply } => {
                    let started = match &reply.answer {
                        Some(Ok(Claim::StartProcessing { token, .. })) if failed.is_none() => {
                            super::token_of(token)
                        }
                        _ => None,
                    };
                    if !reply.send(failed) {
                        // The caller went away before its answer: nobody runs the handler of a
                        // claim it never saw, so drop the claim rather than let it block retries.
                        abandoned.extend(started.map(|token| (op, token)));
                    }
                }
                Request::Complete { reply, .. } | Request::Release { reply, .. } => {
                    reply.send(failed);
                }
                Request::Fail { reply, .. } => {
                    reply.send(failed);
                }
                Request::Unpark { reply, .. } => {
                    reply.send(failed);
                }
                Request::ParkedEvent { reply, .. } => {
                    reply.send(failed);
                }
                Request::Parked { reply } => {
                    reply.send(failed);
                }
            }
        }
        if !abandoned.is_empty() {
            let mut releases: Vec<Request> = abandoned
                .into_iter()
                .map(|(op, token)| Request::Release {
                    id: op.id,
                    token,
                    entity: op.entity.map(|(key, _)| key),
                    reply: Reply::channel().0,
                })
                .collect();
            if let Err(e) = self.apply(&mut releases) {
                tracing::warn!(error = %e, "file store: could not drop abandoned claims; they expire after the processing TTL");
            }
        }
    }

    /// Applies `batch` in one transaction, in order, storing each answer in its request; commits
    /// it, with an fsync when a request's change must be durable before its answer (see
    /// [`Request::durable`]; a claim answered `Superseded` too, since it records the event
    /// handled), or the last fsync is [`MAX_UNSYNCED`] old. On an error nothing is committed.
    fn apply(&mut self, batch: &mut [Request]) -> Result<(), redb::Error> {
        let now = wall_ms(self.clock.as_ref());
        let mut txn = self.db.begin_write()?;
        let mut fsync =
            batch.iter().any(Request::durable) || self.last_fsync.elapsed() >= MAX_UNSYNCED;
        let mut evicted = false;
        {
            let mut tables = Tables::open(&txn)?;
            tables.purge_expired(now, PURGE_PER_BATCH + batch.len())?;
            for request in batch.iter_mut() {
                match request {
                    Request::Claim { op, reply } => {
                        let step = tables.claim(now, op, new_token(), self.capacity)?;
                        reply.answer = Some(match step {
                            ClaimStep::Answer { claim, evicted: e } => {
                                evicted |= e;
                                fsync |= claim == Claim::Superseded;
                                Ok(claim)
                            }
                            ClaimStep::Full => Err(StoreError::Full(
                                usize::try_from(self.capacity).unwrap_or(usize::MAX),
                            )),
                        });
                    }
                    Request::Complete {
                        id,
                        token,
                        op,
                        reply,
                    } => reply.answer = Some(Ok(tables.complete(now, id, *token, op)?)),
                    Request::Release {
                        id,
                        token,
                        entity,
                        reply,
                    } => {
                        let done = tables.release(now, id, *token, entity.as_deref())?;
                        reply.answer = Some(Ok(done));
                    }
                    Request::Fail {
                        id,
                        token,
                        entity,
                        op,
                        reply,
                    } => {
                        let failed = tables.fail(now, id, *token, entity.as_deref(), op)?;
                        reply.answer = Some(Ok(failed));
                    }
                    Request::Unpark { id, reply } => reply.answer = Some(Ok(tables.unpark(id)?)),
                    Request::ParkedEvent { id, reply } => {
                        reply.answer = Some(Ok(tables.parked_event(id)?));
                    }
                    Request::Parked { reply } => reply.answer = Some(Ok(tables.parked_list()?)),
                }
            }
        }
        txn.set_durability(if fsync {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        txn.commit()?;
        if fsync {
            self.last_fsync = Instant::now();
        }
        if evicted {
            self.warn_at_capacity();
        }
        Ok(())
    }

    fn warn_at_capacity(&mut self) {
        if self
            .last_warned
            .is_some_and(|t| t.elapsed() < WARN_INTERVAL)
        {
            return;
        }
        self.last_warned = Some(Instant::now());
        tracing::warn!(
            capacity = self.capacity,
            "file idempotency store at capacity: evicting the oldest handled events (a very late \
             retry of one could run again); raise the capacity"
        );
    }
}

/// A fresh claim token: random, never 0 or `u64::MAX` (they mark handled and parked entries).
fn new_token() -> u64 {
    rand::random::<u64>().clamp(1, u64::MAX - 1)
}

/// The wall-clock time in milliseconds since the Unix epoch (0 before it).
pub(super) fn wall_ms(clock: &dyn Clock) -> u64 {
    let nanos = clock.now().unix_timestamp_nanos() / 1_000_000;
    u64::try_from(nanos).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn claim(id: &str) -> (Request, oneshot::Receiver<Result<Claim, StoreError>>) {
        let (reply, answer) = Reply::channel();
        let op = ClaimOp {
            id: EventId::new(id).unwrap(),
            processing_ttl: 60_000,
            done_ttl: 60_000,
            entity: Some((format!("user:{id}"), 1)),
            replay: false,
        };
        (Request::Claim { op, reply }, answer)
    }

    #[test]
    fn a_claim_whose_caller_went_away_is_dropped_not_left_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("s.redb")).unwrap());
        let mut writer = Writer::new(db, Arc::new(SystemClock), 100);
        let (gone, answer) = claim("gone");
        drop(answer);
        let (kept, mut kept_answer) = claim("kept");
        writer.serve(&mut vec![gone, kept]);
        assert!(matches!(
            kept_answer.try_recv(),
            Ok(Ok(Claim::StartProcessing { .. }))
        ));
        // The abandoned claim was released, its entity's claim too; the answered one holds.
        let (gone, mut gone_answer) = claim("gone");
        let (kept, mut kept_answer) = claim("kept");
        writer.serve(&mut vec![gone, kept]);
        assert!(matches!(
            gone_answer.try_recv(),
            Ok(Ok(Claim::StartProcessing { .. }))
        ));
        assert!(matches!(kept_answer.try_recv(), Ok(Ok(Claim::InProgress))));
    }
}
