//! The store's operations: each one script on the event's slot (an event and its entity share
//! one), and, only when parking or unparking, one on the parked set's slot.

use ::redis::{FromRedisValue, ScriptInvocation};
use async_trait::async_trait;

use super::scripts::{CLAIM, COMPLETE, FAIL, RELEASE, SETTLE, UNPARK};
use super::{FailMode, RedisStore};
use crate::event::EventId;
use crate::store::{
    millis, Applied, Claim, ClaimRequest, ClaimToken, Completion, Failed, Failure, Fenced,
    IdempotencyStore, ParkedEvent, StoreError,
};

/// The prefix of the tokens handed out when failing open: they fence nothing.
const FAIL_OPEN: &str = "fail-open:";

fn is_fail_open(token: &ClaimToken) -> bool {
    token.as_str().starts_with(FAIL_OPEN)
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// A reply the scripts never give: a key holding something else (another program's data
/// under this prefix?).
fn foreign(what: &str) -> StoreError {
    StoreError::Unavailable(
        format!(
            "{what} (a key prefix shared with other data? RedisStore reads only what it wrote)"
        )
        .into(),
    )
}

impl RedisStore {
    /// Runs a prepared script, bounded like every command.
    pub(super) async fn eval<T: FromRedisValue + Send>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    /// A script on the event's slot: KEYS are the event (and its entity).
    fn on_event<'a>(
        &self,
        script: &'a ::redis::Script,
        event_id: &EventId,
        entity: Option<&str>,
    ) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation.key(self.event_key(event_id, entity));
        if let Some(entity) = entity {
            invocation.key(self.entity_key(entity));
        }
        invocation
    }

    async fn try_claim(&self, req: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let token = ClaimToken::random();
        if req.entity.is_none() && !req.replay && self.claim_absent(req, &token).await? {
            return Ok(Claim::StartProcessing {
                token,
                previous: None,
            });
        }
        let mut invocation = self.on_event(&CLAIM, req.event_id, req.entity.map(|e| e.key));
        invocation
            .arg(token.as_str())
            .arg(millis(req.processing_ttl))
            .arg(millis(req.done_ttl))
            .arg(flag(req.replay));
        if let Some(entity) = req.entity {
            invocation.arg(entity.timestamp).arg(req.event_id.as_str());
        }
        let (code, applied, deleted): (i64, Option<String>, Option<String>) =
            self.eval(&invocation).await?;
        Ok(match code {
            0 => Claim::StartProcessing {
                token,
                previous: match applied {
                    None => None,
                    Some(a) => Some(Applied {
                        timestamp: a
                            .parse()
                            .map_err(|_| foreign("an entity record holds a bad timestamp"))?,
                        deleted: deleted.as_deref() == Some("1"),
                    }),
                },
            },
            1 => Claim::AlreadyHandled,
            2 => Claim::InProgress,
            3 => Claim::Superseded,
            4 => Claim::Parked,
            _ => {
                return Err(foreign(
                    "the event's key holds a value RedisStore did not write",
                ))
            }
        })
    }

    /// The common case in one plain command: an event whose key is absent (new, or its state
    /// expired) is claimed with `SET key p:<token> NX PX <processing>`, exactly what [`CLAIM`]
    /// writes for an absent key without entity or replay. `false` when the key exists: its
    /// state is for the script to read.
    async fn claim_absent(
        &self,
        req: &ClaimRequest<'_>,
        token: &ClaimToken,
    ) -> Result<bool, StoreError> {
        let mut set = ::redis::cmd("SET");
        set.arg(self.event_key(req.event_id, None))
            .arg(format!("p:{}", token.as_str()))
            .arg("NX")
            .arg("PX")
            .arg(millis(req.processing_ttl));
        let reply: ::redis::Value = self
            .run(|mut c| {
                let set = &set;
                async move { set.query_async(&mut c).await }
            })
            .await?;
        match reply {
            ::redis::Value::Okay => Ok(true),
            ::redis::Value::Nil => Ok(false),
            _ => Err(foreign("an unexpected reply to SET NX")),
        }
    }

    /// Counts a failure; parks on the `park_after`-th if the parked set has room (its slot is
    /// asked between the two event scripts, so a parked state always has its record).
    async fn try_fail(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
        failure: &Failure<'_>,
    ) -> Result<Failed, StoreError> {
        let done = millis(failure.done_ttl);
        let mut invocation = self.on_event(&FAIL, event_id, entity);
        invocation
            .arg(token.as_str())
            .arg(failure.park_after.max(1))
            .arg(done)
            .arg(failure.at_ms);
        let (code, attempts, first, had_record): (i64, u32, Option<String>, Option<String>) =
            self.eval(&invocation).await?;
        let first = first.unwrap_or_default();
        match code {
            -1 => return Ok(Failed::Superseded),
            0 => return Ok(Failed::Released { attempts }),
            1 => {}
            _ => return Err(foreign("unexpected reply to a failure")),
        }
        let first_ms: i64 = first
            .parse()
            .map_err(|_| foreign("an event's key holds a bad failure time"))?;
        let record = ParkedEvent {
            event_id: event_id.clone(),
            event_type: failure.event_type.to_owned(),
            token: failure.token.to_owned(),
            attempts,
            last_error: failure.error.to_owned(),
            first_attempt_ms: first_ms,
            last_attempt_ms: failure.at_ms,
        };
        let (parked, attempts, record_was_there) = self.park(&record, failure.limits).await?;
        let mut invocation = self.on_event(&SETTLE, event_id, entity);
        invocation
            .arg(token.as_str())
            .arg(flag(parked))
            .arg(attempts)
            .arg(first_ms)
            .arg(flag(record_was_there || had_record.as_deref() == Some("1")))
            .arg(done);
        let settled: i64 = self.eval(&invocation).await?;
        Ok(match (settled, parked) {
            // The claim expired and was taken over meanwhile: the record stays (listed, and a
            // replay sorts it out), the event's state is the new claim's.
            (0, _) => Failed::Superseded,
            (_, true) => Failed::Parked { attempts },
            (_, false) => Failed::ParkFull { attempts },
        })
    }
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        match self.try_claim(request).await {
            Err(e) if self.fail_mode == FailMode::Open => {
                tracing::warn!(
                    error = %e,
                    "Redis idempotency store unavailable; failing open: handling the event \
                     without deduplication or ordering (a duplicate may run its handler again)"
                );
                Ok(Claim::StartProcessing {
                    token: ClaimToken::from_string(format!(
                        "{FAIL_OPEN}{}",
                        ClaimToken::random().as_str()
                    )),
                    previous: None,
                })
            }
            other => other,
        }
    }

    async fn complete(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        completion: &Completion<'_>,
    ) -> Result<Fenced, StoreError> {
        if is_fail_open(token) {
            // Nothing was recorded at claim time, so there is nothing to complete.
            tracing::debug!("completion of a fail-open claim: nothing recorded");
            return Ok(Fenced::Applied);
        }
        let mut invocation = self.on_event(&COMPLETE, event_id, completion.entity.map(|e| e.key));
        invocation
            .arg(token.as_str())
            .arg(millis(completion.done_ttl));
        if let Some(entity) = completion.entity {
            invocation
                .arg(entity.timestamp)
                .arg(flag(completion.deletes));
        }
        let done: i64 = self.eval(&invocation).await?;
        match done {
            0 => return Ok(Fenced::Superseded),
            1 => {}
            _ => {
                // A replay succeeded (or the event had a parked record): the record goes. The
                // event is recorded handled already; if this fails the record stays listed,
                // and replaying it answers `duplicate` and drops it.
                if let Err(e) = self.drop_record(event_id).await {
                    tracing::warn!(
                        error = %e,
                        "handled, but its parked record could not be dropped; it stays listed \
                         (replaying it drops it)"
                    );
                }
            }
        }
        Ok(Fenced::Applied)
    }

    async fn release(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
    ) -> Result<Fenced, StoreError> {
        if is_fail_open(token) {
            tracing::debug!("release of a fail-open claim: nothing recorded");
            return Ok(Fenced::Applied);
        }
        let mut invocation = self.on_event(&RELEASE, event_id, entity);
        invocation.arg(token.as_str());
        let released: i64 = self.eval(&invocation).await?;
        Ok(if released == 1 {
            Fenced::Applied
        } else {
            Fenced::Superseded
        })
    }

    async fn fail(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
        entity: Option<&str>,
        failure: &Failure<'_>,
    ) -> Result<Failed, StoreError> {
        if is_fail_open(token) {
            // Parking needs Redis: a failure while it is down is not counted.
            tracing::debug!("failure of a fail-open claim: not counted");
            return Ok(Failed::Released { attempts: 0 });
        }
        self.try_fail(event_id, token, entity, failure).await
    }

    async fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        self.list_parked().await
    }

    async fn parked_event(&self, event_id: &EventId) -> Result<Option<ParkedEvent>, StoreError> {
        self.get_parked(event_id).await
    }

    async fn unpark(&self, event_id: &EventId, entity: Option<&str>) -> Result<bool, StoreError> {
        // The state first, then the record: a parked state never lacks its record.
        let mut invocation = UNPARK.prepare_invoke();
        invocation.key(self.event_key(event_id, entity));
        let _was_parked: i64 = self.eval(&invocation).await?;
        self.drop_record(event_id).await
    }
}
