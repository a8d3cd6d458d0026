//! Parked events: their records, all in one slot (`{parked}`), so that the bound on them is
//! exact and global (one script checks and writes), and listing them is one `HSCAN` walk.

use serde::{Deserialize, Serialize};

use super::scripts::{DROP_RECORD, PARK};
use super::RedisStore;
use crate::event::EventId;
use crate::store::{ParkLimits, ParkedEvent, StoreError};

/// What `HSCAN` asks for per round trip.
const SCAN_COUNT: usize = 500;

/// The JSON part of a record (attempts, first attempt and size are before it, for the scripts).
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    token: &'a str,
    error: &'a str,
    last: i64,
}

#[derive(Deserialize)]
struct OwnedBody {
    #[serde(rename = "type")]
    event_type: String,
    token: String,
    error: String,
    last: i64,
}

fn bad_record() -> StoreError {
    StoreError::Unavailable(
        "a parked record RedisStore did not write (a key prefix shared with other data?)".into(),
    )
}

/// A record as stored: `<attempts>:<first>:<size>:<json>`.
fn decode(event_id: &str, value: &str) -> Result<ParkedEvent, StoreError> {
    let mut parts = value.splitn(4, ':');
    let mut next = || parts.next().ok_or_else(bad_record);
    let attempts = next()?.parse().map_err(|_| bad_record())?;
    let first_attempt_ms = next()?.parse().map_err(|_| bad_record())?;
    let _size: usize = next()?.parse().map_err(|_| bad_record())?;
    let body: OwnedBody = serde_json::from_str(next()?).map_err(|_| bad_record())?;
    Ok(ParkedEvent {
        event_id: EventId::new(event_id).map_err(|_| bad_record())?,
        event_type: body.event_type,
        token: body.token,
        attempts,
        last_error: body.error,
        first_attempt_ms,
        last_attempt_ms: body.last,
    })
}

impl RedisStore {
    /// Writes `record` into the parked set if it fits `limits` (replacing the event's record
    /// if it has one: then at least its attempts + 1, and its first attempt kept). Returns
    /// whether it was parked, the attempts recorded, and whether a record was there before.
    pub(super) async fn park(
        &self,
        record: &ParkedEvent,
        limits: ParkLimits,
    ) -> Result<(bool, u32, bool), StoreError> {
        let body = serde_json::to_string(&Body {
            event_type: &record.event_type,
            token: &record.token,
            error: &record.last_error,
            last: record.last_attempt_ms,
        })
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let mut invocation = PARK.prepare_invoke();
        invocation
            .key(self.parked_records_key())
            .key(self.parked_bytes_key())
            .arg(record.event_id.as_str())
            .arg(record.attempts)
            .arg(record.first_attempt_ms)
            .arg(record.size())
            .arg(limits.events)
            .arg(limits.bytes)
            .arg(body);
        let (parked, attempts, had): (i64, u32, i64) = self.eval(&invocation).await?;
        Ok((parked == 1, attempts, had == 1))
    }

    /// Drops the parked record of `event_id`; whether there was one.
    pub(super) async fn drop_record(&self, event_id: &EventId) -> Result<bool, StoreError> {
        let mut invocation = DROP_RECORD.prepare_invoke();
        invocation
            .key(self.parked_records_key())
            .key(self.parked_bytes_key())
            .arg(event_id.as_str());
        let dropped: i64 = self.eval(&invocation).await?;
        Ok(dropped == 1)
    }

    pub(super) async fn get_parked(
        &self,
        event_id: &EventId,
    ) -> Result<Option<ParkedEvent>, StoreError> {
        let key = self.parked_records_key();
        let (key, field) = (key.as_str(), event_id.as_str());
        let value: Option<String> = self
            .run(|mut c| async move {
                ::redis::cmd("HGET")
                    .arg(key)
                    .arg(field)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        value.map(|v| decode(field, &v)).transpose()
    }

    /// Every parked record, oldest first attempt first (then by id), walked with `HSCAN` (each
    /// step bounded like any command).
    pub(super) async fn list_parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        let key = self.parked_records_key();
        let key = key.as_str();
        // A scan may return an entry twice (when the hash is resized meanwhile).
        let mut all = std::collections::HashMap::new();
        let mut cursor = 0u64;
        loop {
            let (next, items): (u64, Vec<(String, String)>) = self
                .run(|mut c| async move {
                    ::redis::cmd("HSCAN")
                        .arg(key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            for (id, value) in items {
                let record = decode(&id, &value)?;
                all.insert(record.event_id.clone(), record);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut all: Vec<ParkedEvent> = all.into_values().collect();
        all.sort_by(|a, b| {
            (a.first_attempt_ms, a.event_id.as_str())
                .cmp(&(b.first_attempt_ms, b.event_id.as_str()))
        });
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_and_refuse_what_they_are_not() {
        let p = decode(
            "event_1",
            r#"3:1700000000000:40:{"type":"user.updated","token":"a.b.c","error":"x: y","last":1700000000500}"#,
        )
        .unwrap();
        assert_eq!(
            (p.attempts, p.first_attempt_ms, p.last_attempt_ms),
            (3, 1_700_000_000_000, 1_700_000_000_500)
        );
        assert_eq!(
            (
                p.event_type.as_str(),
                p.token.as_str(),
                p.last_error.as_str()
            ),
            ("user.updated", "a.b.c", "x: y")
        );
        for bad in ["", "3", "3:1:2", "x:1:2:{}", "3:1:2:{}", "3:1:2:not json"] {
            assert!(decode("event_1", bad).is_err(), "{bad:?}");
        }
        assert!(decode(
            "has space",
            r#"1:1:1:{"type":"t","token":"k","error":"e","last":1}"#
        )
        .is_err());
    }
}
