//! The store's operations: one key per event, claimed with `SET NX GET`, settled by fenced
//! Lua scripts.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;

use super::{FailMode, RedisStore};
use crate::event::is_valid_id;
use crate::store::{Claim, ClaimToken, Fenced, IdempotencyStore, StoreError};

/// The value of a handled event.
const DONE: &[u8] = b"d";
/// The prefix of the value of a claim being processed: `p:<token>`.
const PROCESSING: &[u8] = b"p:";
/// The prefix of the tokens handed out when failing open: they fence nothing.
const FAIL_OPEN: &str = "fail-open:";

/// `complete`: mark handled for `ARGV[2]` ms, only if the claim is still `ARGV[1]`.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2]) return 1 \
         end return 0",
    )
});

/// `release`: delete the claim, only if it is still `ARGV[1]`.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             redis.call('DEL', KEYS[1]) return 1 \
         end return 0",
    )
});

impl RedisStore {
    /// The key of `event_id`, if it is acceptable.
    fn key(&self, event_id: &str) -> Result<String, StoreError> {
        if !is_valid_id(event_id.as_bytes()) {
            return Err(StoreError::InvalidKey);
        }
        Ok(format!("{}{event_id}", self.prefix))
    }

    async fn fenced(
        &self,
        script: &Script,
        key: String,
        args: &[Vec<u8>],
    ) -> Result<Fenced, StoreError> {
        let key = key.as_str();
        let applied: i64 = self
            .run(|mut c| async move {
                let mut call = script.key(key);
                for a in args {
                    call.arg(a.as_slice());
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(if applied == 1 {
            Fenced::Applied
        } else {
            Fenced::Superseded
        })
    }

    async fn try_claim(&self, key: String, processing_ttl: Duration) -> Result<Claim, StoreError> {
        let token = ClaimToken::random();
        let value = processing_value(&token);
        let (key, value) = (&key, &value);
        let previous: Option<Vec<u8>> = self
            .run(|mut c| async move {
                ::redis::cmd("SET")
                    .arg(key.as_str())
                    .arg(value.as_slice())
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(processing_ttl))
                    .arg("GET")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        match previous.as_deref() {
            None => Ok(Claim::StartProcessing(token)),
            Some(DONE) => Ok(Claim::AlreadyHandled),
            Some(v) if v.starts_with(PROCESSING) => Ok(Claim::InProgress),
            Some(_) => Err(StoreError::Unavailable(
                "the idempotency key holds a value RedisStore did not write (a key prefix shared \
                 with other data?)"
                    .into(),
            )),
        }
    }
}

/// A TTL in whole milliseconds, at least 1 (`PX 0` is an error).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn is_fail_open(token: &ClaimToken) -> bool {
    token.as_str().starts_with(FAIL_OPEN)
}

fn processing_value(token: &ClaimToken) -> Vec<u8> {
    [PROCESSING, token.as_str().as_bytes()].concat()
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn claim(&self, event_id: &str, processing_ttl: Duration) -> Result<Claim, StoreError> {
        let key = self.key(event_id)?;
        match self.try_claim(key, processing_ttl).await {
            Err(e) if self.fail_mode == FailMode::Open => {
                tracing::warn!(
                    error = %e,
                    "Redis idempotency store unavailable; failing open: handling the event \
                     without deduplication (a duplicate may run its handler again)"
                );
                Ok(Claim::StartProcessing(ClaimToken::from_string(format!(
                    "{FAIL_OPEN}{}",
                    ClaimToken::random().as_str()
                ))))
            }
            other => other,
        }
    }

    async fn complete(
        &self,
        event_id: &str,
        token: &ClaimToken,
        done_ttl: Duration,
    ) -> Result<Fenced, StoreError> {
        let key = self.key(event_id)?;
        if is_fail_open(token) {
            // Nothing was recorded at claim time, so there is nothing to complete.
            tracing::debug!("completion of a fail-open claim: nothing recorded");
            return Ok(Fenced::Applied);
        }
        let args = [
            processing_value(token),
            millis(done_ttl).to_string().into_bytes(),
        ];
        self.fenced(&COMPLETE, key, &args).await
    }

    async fn release(&self, event_id: &str, token: &ClaimToken) -> Result<Fenced, StoreError> {
        let key = self.key(event_id)?;
        if is_fail_open(token) {
            tracing::debug!("release of a fail-open claim: nothing recorded");
            return Ok(Fenced::Applied);
        }
        self.fenced(&RELEASE, key, &[processing_value(token)]).await
    }
}
