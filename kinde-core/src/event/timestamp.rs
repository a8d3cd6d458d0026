//! Kinde's `timestamp` field in the three forms it has been seen in.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Why a `timestamp` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timestamp is neither RFC 3339 nor an epoch in seconds: {0}")]
pub struct TimestampError(pub(crate) String);

/// Parses a Kinde timestamp: RFC 3339 with an offset and fractions
/// (`2024-04-26T17:42:58.089353-07:00`), RFC 3339 with an hour-only offset (`…+10`, `…+00`),
/// or a numeric epoch in seconds (integer or fractional JSON number).
pub fn parse_timestamp(value: &serde_json::Value) -> Result<OffsetDateTime, TimestampError> {
    match value {
        serde_json::Value::String(s) => parse_timestamp_str(s),
        serde_json::Value::Number(n) => {
            let secs = n
                .as_i64()
                .map(i128::from)
                .map(|s| s * 1_000_000_000)
                .or_else(|| n.as_f64().map(|f| (f * 1e9) as i128))
                .ok_or_else(|| TimestampError(n.to_string()))?;
            OffsetDateTime::from_unix_timestamp_nanos(secs)
                .map_err(|_| TimestampError(n.to_string()))
        }
        other => Err(TimestampError(truncate(&other.to_string()))),
    }
}

/// Parses the string forms of [`parse_timestamp`].
pub fn parse_timestamp_str(s: &str) -> Result<OffsetDateTime, TimestampError> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    // `+10` / `-07` / `+00`: an offset of whole hours written without minutes.
    let b = s.as_bytes();
    if b.len() > 3
        && matches!(b[b.len() - 3], b'+' | b'-')
        && b[b.len() - 2..].iter().all(u8::is_ascii_digit)
    {
        if let Ok(t) = OffsetDateTime::parse(&format!("{s}:00"), &Rfc3339) {
            return Ok(t);
        }
    }
    // A numeric epoch sent as a string.
    if let Ok(secs) = s.parse::<i64>() {
        if let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) {
            return Ok(t);
        }
    }
    Err(TimestampError(truncate(s)))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn rfc3339_with_micros_and_offset() {
        let t = parse_timestamp(&json!("2024-04-26T17:42:58.089353-07:00")).unwrap();
        assert_eq!(t, datetime!(2024-04-27 00:42:58.089353 UTC));
    }

    #[test]
    fn hour_only_offsets() {
        let t = parse_timestamp(&json!("2024-04-26T17:42:58.089353+10")).unwrap();
        assert_eq!(t, datetime!(2024-04-26 07:42:58.089353 UTC));
        let t = parse_timestamp(&json!("2024-04-26T17:42:58+00")).unwrap();
        assert_eq!(t, datetime!(2024-04-26 17:42:58 UTC));
        let t = parse_timestamp(&json!("2024-04-26T17:42:58Z")).unwrap();
        assert_eq!(t, datetime!(2024-04-26 17:42:58 UTC));
    }

    #[test]
    fn numeric_epoch_seconds() {
        let t = parse_timestamp(&json!(1714178578)).unwrap();
        assert_eq!(t.unix_timestamp(), 1714178578);
        let t = parse_timestamp(&json!(1714178578.5)).unwrap();
        assert_eq!(t.unix_timestamp_nanos(), 1_714_178_578_500_000_000);
        let t = parse_timestamp(&json!("1714178578")).unwrap();
        assert_eq!(t.unix_timestamp(), 1714178578);
    }

    #[test]
    fn garbage_is_an_error() {
        for v in [
            json!("yesterday"),
            json!(""),
            json!(null),
            json!({"a": 1}),
            json!("2024-13-40T00:00:00Z"),
            json!(1e300),
        ] {
            assert!(parse_timestamp(&v).is_err(), "{v} should not parse");
        }
    }
}
