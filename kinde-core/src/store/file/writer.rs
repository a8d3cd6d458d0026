//! The writer thread: every operation goes through it, many per transaction (group commit).
//!
//! The async side sends a [`Request`] and awaits its reply, so no store operation blocks a tokio
//! worker. The thread takes what is queued (up to [`MAX_BATCH`]), applies it in order inside one
//! write transaction and commits once, then answers every request of the batch. A batch holding
//! a completion is committed with an fsync before anyone is answered; a batch of claims and
//! releases only is committed without one (it reaches the disk with the next fsync, at most
//! [`MAX_UNSYNCED`] later under steady traffic).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::{mpsc, oneshot};

use super::tables::{ClaimStep, Tables};
use crate::clock::Clock;
use crate::store::{Claim, Fenced, StoreError};

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
        id: String,
        ttl: u64,
        reply: Reply<Claim>,
    },
    Complete {
        id: String,
        token: u64,
        ttl: u64,
        reply: Reply<Fenced>,
    },
    Release {
        id: String,
        token: u64,
        reply: Reply<Fenced>,
    },
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
        let fsync = batch.iter().any(|r| matches!(r, Request::Complete { .. }))
            || self.last_fsync.elapsed() >= MAX_UNSYNCED;
        let failed = self.apply(batch, fsync).err().map(|e| {
            tracing::error!(error = %e, "file store: a write transaction failed");
            format!("file store write failed: {e}")
        });
        let mut abandoned = Vec::new();
        for request in batch.drain(..) {
            match request {
                Request::Claim { id, reply, .. } => {
                    let started = match &reply.answer {
                        Some(Ok(Claim::StartProcessing(t))) if failed.is_none() => {
                            super::token_of(t)
                        }
                        _ => None,
                    };
                    if !reply.send(failed.as_deref()) {
                        // The caller went away before its answer: nobody runs the handler of a
                        // claim it never saw, so drop the claim rather than let it block retries.
                        abandoned.extend(started.map(|token| (id, token)));
                    }
                }
                Request::Complete { reply, .. } | Request::Release { reply, .. } => {
                    reply.send(failed.as_deref());
                }
            }
        }
        if !abandoned.is_empty() {
            let mut releases: Vec<Request> = abandoned
                .into_iter()
                .map(|(id, token)| Request::Release {
                    id,
                    token,
                    reply: Reply::channel().0,
                })
                .collect();
            if let Err(e) = self.apply(&mut releases, false) {
                tracing::warn!(error = %e, "file store: could not drop abandoned claims; they expire after the processing TTL");
            }
        }
    }

    /// Applies `batch` in one transaction, in order, storing each answer in its request; commits
    /// it (with an fsync when `fsync`). On an error nothing is committed.
    fn apply(&mut self, batch: &mut [Request], fsync: bool) -> Result<(), redb::Error> {
        let now = wall_ms(self.clock.as_ref());
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if fsync {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let mut evicted = false;
        {
            let mut tables = Tables::open(&txn)?;
            tables.purge_expired(now, PURGE_PER_BATCH + batch.len())?;
            for request in batch.iter_mut() {
                match request {
                    Request::Claim { id, ttl, reply } => {
                        let step = tables.claim(now, id, *ttl, new_token(), self.capacity)?;
                        reply.answer = Some(match step {
                            ClaimStep::Answer { claim, evicted: e } => {
                                evicted |= e;
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
                        ttl,
                        reply,
                    } => reply.answer = Some(Ok(tables.complete(now, id, *token, *ttl)?)),
                    Request::Release { id, token, reply } => {
                        reply.answer = Some(Ok(tables.release(id, *token)?));
                    }
                }
            }
        }
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

/// A fresh claim token: random, never 0 (0 marks a handled entry).
fn new_token() -> u64 {
    rand::random::<u64>().max(1)
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
        let id = id.to_owned();
        (
            Request::Claim {
                id,
                ttl: 60_000,
                reply,
            },
            answer,
        )
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
            Ok(Ok(Claim::StartProcessing(_)))
        ));
        // The abandoned claim was released; the answered one holds.
        let (gone, mut gone_answer) = claim("gone");
        let (kept, mut kept_answer) = claim("kept");
        writer.serve(&mut vec![gone, kept]);
        assert!(matches!(
            gone_answer.try_recv(),
            Ok(Ok(Claim::StartProcessing(_)))
        ));
        assert!(matches!(kept_answer.try_recv(), Ok(Ok(Claim::InProgress))));
    }
}
