//! The claims of a signed token, read in one pass and checked: webhook shape, identifiers,
//! `exp`/`nbf` and the replay window.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::token::borrowed;
use super::{ReplayWindow, VerifiedToken, VerifyError};
use crate::event::{is_valid_id, parse_timestamp, parse_timestamp_str, EventId, EventMeta, Source};

/// The claims as sent. Timestamps, `event_id` and `source` stay borrowed from the decoded
/// payload until read (no copy but the one kept); `data` is kept raw. A repeated claim name is
/// an error.
#[derive(Deserialize)]
pub(super) struct Claims<'a> {
    #[serde(rename = "type")]
    event_type: Option<String>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    event_timestamp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    source: Option<Cow<'a, str>>,
    ip_address: Option<String>,
    /// `Some` whenever the claim is present, `null` included.
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    exp: Option<f64>,
    nbf: Option<f64>,
    // Present on access and ID tokens.
    aud: Option<IgnoredAny>,
    azp: Option<IgnoredAny>,
    scp: Option<IgnoredAny>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Parses the decoded payload.
pub(super) fn parse(payload: &[u8]) -> Result<Claims<'_>, VerifyError> {
    serde_json::from_slice(payload).map_err(|e| VerifyError::InvalidClaims(e.to_string()))
}

/// Checks the claims at `now`: a webhook (`type`, `event_id`, `timestamp` and `data` present,
/// no audience), a `type` and an `event_id` of 1–256 visible ASCII bytes, `exp`/`nbf`, and the
/// replay window. `data` may be any JSON value: whether it fits the type is for the handler.
pub(super) fn check(
    c: Claims<'_>,
    now: OffsetDateTime,
    window: Option<&ReplayWindow>,
) -> Result<VerifiedToken, VerifyError> {
    let (Some(event_type), Some(event_id), Some(ts), Some(data)) =
        (c.event_type, c.event_id, c.timestamp, c.data)
    else {
        return Err(VerifyError::WrongTokenKind);
    };
    if c.aud.is_some() || c.azp.is_some() || c.scp.is_some() {
        return Err(VerifyError::WrongTokenKind);
    }
    // No grammar beyond this: case and `_` are Kinde's (`access_request.created`), and an
    // unknown type is for the fallback. What passes is safe in a log line or a store key.
    if !is_valid_id(event_type.as_bytes()) {
        return Err(VerifyError::InvalidClaims(
            "type must be 1-256 bytes of visible ASCII".into(),
        ));
    }
    let event_id = EventId::new(event_id).map_err(|_| VerifyError::InvalidEventId)?;
    let unix = now.unix_timestamp() as f64;
    if c.exp.is_some_and(|exp| exp <= unix) {
        return Err(VerifyError::Expired);
    }
    if c.nbf.is_some_and(|nbf| nbf > unix) {
        return Err(VerifyError::NotYetValid);
    }
    let timestamp = stamp(ts).ok_or(VerifyError::InvalidTimestamp)?;
    if let Some(window) = window {
        check_window(window, now, timestamp)?;
    }
    Ok(VerifiedToken {
        meta: EventMeta {
            event_id,
            event_type,
            source: c.source.map(Source::from_wire),
            timestamp,
            event_timestamp: c.event_timestamp.and_then(stamp),
            ip_address: c.ip_address,
            webhook_id: None,
            entity_key: None,
            previous_applied_at: None,
        },
        data,
    })
}

/// A timestamp claim: a string (read in place unless it has escapes) or a number.
fn stamp(raw: &RawValue) -> Option<OffsetDateTime> {
    let json = raw.get();
    if json.starts_with('"') {
        return match serde_json::from_str::<&str>(json) {
            Ok(s) => parse_timestamp_str(s).ok(),
            Err(_) => parse_timestamp_str(&serde_json::from_str::<String>(json).ok()?).ok(),
        };
    }
    let number: serde_json::Number = serde_json::from_str(json).ok()?;
    parse_timestamp(&serde_json::Value::Number(number)).ok()
}

fn check_window(
    window: &ReplayWindow,
    now: OffsetDateTime,
    ts: OffsetDateTime,
) -> Result<(), VerifyError> {
    if ts < now && (now - ts) > window.max_age {
        return Err(VerifyError::Stale);
    }
    if ts > now && (ts - now) > window.max_future {
        return Err(VerifyError::Future);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-04-26 17:42:58 UTC);

    fn checked(claims: serde_json::Value) -> Result<VerifiedToken, VerifyError> {
        let bytes = claims.to_string().into_bytes();
        check(parse(&bytes)?, NOW, Some(&ReplayWindow::default()))
    }

    fn webhook() -> serde_json::Value {
        json!({
            "type": "user.created", "event_id": "event_1", "source": "admin",
            "timestamp": "2024-04-26T17:42:58.089353+00:00", "data": {"user": {"id": "kp_1"}}
        })
    }

    fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut c = webhook();
        c[key] = value;
        c
    }

    #[test]
    fn a_webhook_reads_in_one_pass() {
        let t = checked(webhook()).unwrap();
        assert_eq!(t.meta.event_type, "user.created");
        assert_eq!(t.meta.event_id, "event_1");
        assert_eq!(t.meta.source, Some(Source::Admin));
        assert_eq!(t.data.get(), r#"{"user":{"id":"kp_1"}}"#);
        let numeric = checked(with("timestamp", json!(NOW.unix_timestamp()))).unwrap();
        assert_eq!(numeric.meta.timestamp, NOW);
        let escaped = br#"{"type":"t","event_id":"e","timestamp":"2024-04-26T17:42:58\u002b00:00","data":{}}"#;
        let escaped = check(parse(escaped).unwrap(), NOW, Some(&ReplayWindow::default())).unwrap();
        assert_eq!(escaped.meta.timestamp, NOW);
        let t = checked(with("event_timestamp", json!("2024-04-26T17:00:00Z"))).unwrap();
        assert_eq!(
            t.meta.event_timestamp,
            Some(datetime!(2024-04-26 17:00 UTC))
        );
    }

    #[test]
    fn type_is_visible_ascii_of_at_most_256_bytes_and_nothing_more() {
        for ok in [
            "User.Created",
            "access_request.created",
            "x",
            &"t".repeat(256),
        ] {
            assert_eq!(
                checked(with("type", json!(ok))).unwrap().meta.event_type,
                ok
            );
        }
        for bad in [
            "",
            "user.created ",
            " user.created",
            "user.created\nhandled user.created event_x",
            "user\t.created",
            "usér.created",
            "user.created\u{0}",
            &"t".repeat(257),
        ] {
            assert!(
                matches!(
                    checked(with("type", json!(bad))),
                    Err(VerifyError::InvalidClaims(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn data_of_any_kind_passes_only_a_missing_data_is_not_a_webhook() {
        for data in [json!([1]), json!("text"), json!(null), json!(1), json!({})] {
            let t = checked(with("data", data.clone())).unwrap();
            assert_eq!(t.data.get(), data.to_string());
        }
        let mut no_data = webhook();
        no_data.as_object_mut().unwrap().remove("data");
        assert!(matches!(checked(no_data), Err(VerifyError::WrongTokenKind)));
    }

    #[test]
    fn event_id_and_source_are_borrowed_unless_escaped() {
        let plain = br#"{"type":"t","event_id":"e_1","source":"custom","timestamp":1,"data":{}}"#;
        let c = parse(plain).unwrap();
        assert!(matches!(c.event_id, Some(Cow::Borrowed("e_1"))));
        assert!(matches!(c.source, Some(Cow::Borrowed("custom"))));
        let escaped =
            br#"{"type":"t","event_id":"e\u005f1","source":"a\u0064min","timestamp":1,"data":{}}"#;
        let t = check(parse(escaped).unwrap(), NOW, None).unwrap();
        assert_eq!(t.meta.event_id, "e_1");
        assert_eq!(t.meta.source, Some(Source::Admin));
        let other = check(parse(plain).unwrap(), NOW, None).unwrap();
        assert_eq!(other.meta.source, Some(Source::Other("custom".into())));
        // null is absent, a number is unreadable.
        let null_id = br#"{"type":"t","event_id":null,"timestamp":1,"data":{}}"#;
        assert!(matches!(
            check(parse(null_id).unwrap(), NOW, None),
            Err(VerifyError::WrongTokenKind)
        ));
        assert!(parse(br#"{"event_id":5}"#).is_err());
    }

    #[test]
    fn repeated_claims_are_refused() {
        let json =
            r#"{"type":"user.created","event_id":"a","event_id":"b","timestamp":1,"data":{}}"#;
        assert!(matches!(
            parse(json.as_bytes()),
            Err(VerifyError::InvalidClaims(_))
        ));
    }
}
