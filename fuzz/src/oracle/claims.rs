//! The claims of a token whose signature verified: a webhook (`type`, `event_id`, `timestamp`,
//! `data`; no audience), a valid `event_id`, `exp`/`nbf`, and the replay window.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kinde_core::event::parse_timestamp;

use super::{is_null, valid_id, Allowed, Fields, Oracle, Signed};

/// The claims the spec reads; a repeated one is an error (the others are not read at all).
const CLAIMS: &[&str] = &[
    "type",
    "event_id",
    "timestamp",
    "event_timestamp",
    "source",
    "ip_address",
    "data",
    "exp",
    "nbf",
    "aud",
    "azp",
    "scp",
];

/// The claims whose values the spec reads (the audience claims only count as present).
const READ: &[&str] = &[
    "type",
    "event_id",
    "timestamp",
    "event_timestamp",
    "source",
    "ip_address",
    "data",
    "exp",
    "nbf",
];

/// Reads the payload segment: the answers allowed, and the event if it may be taken.
pub(super) fn read(segment: &[u8], oracle: &Oracle) -> (Allowed, Option<Signed>) {
    let mut allowed = Allowed::default();
    let Ok(json) = URL_SAFE_NO_PAD.decode(segment) else {
        allowed.must(&["malformed_token"]);
        return (allowed, None);
    };
    let Ok(fields) = Fields::parse(&json, READ) else {
        allowed.must(&["invalid_claims"]);
        return (allowed, None);
    };
    if std::str::from_utf8(&json).is_err() {
        // Not UTF-8 JSON text, though the bad bytes are in claims the spec does not read.
        allowed.may(&["invalid_claims"]);
    }
    if fields.repeats_one_of(CLAIMS) {
        allowed.must(&["invalid_claims"]);
    }
    let event_type = text(&fields, "type", &mut allowed);
    let event_id = text(&fields, "event_id", &mut allowed);
    text(&fields, "source", &mut allowed);
    text(&fields, "ip_address", &mut allowed);
    let exp = number(&fields, "exp", &mut allowed);
    let nbf = number(&fields, "nbf", &mut allowed);
    let timestamp = fields.get("timestamp").filter(|v| !is_null(v));
    let data = fields.get("data");
    if let Some(v) = fields.get("event_timestamp") {
        // Optional and unchecked; a number too large for an f64 may still be refused.
        if serde_json::from_str::<serde_json::Value>(v.get()).is_err() {
            allowed.may(&["invalid_claims"]);
        }
    }

    if event_type.is_none() || event_id.is_none() || timestamp.is_none() || data.is_none() {
        allowed.must(&["wrong_token_kind"]);
    }
    if data.is_some_and(is_null) {
        // A `data` sent as null: not a webhook, or a webhook with null data for the handler.
        allowed.may(&["wrong_token_kind"]);
    }
    for audience in ["aud", "azp", "scp"] {
        if fields.has_non_null(audience) {
            allowed.must(&["wrong_token_kind"]);
        }
    }
    if event_type.as_deref().is_some_and(|t| !valid_id(t)) {
        // A type no store key or log line should carry; refusing it is allowed.
        allowed.may(&["invalid_claims"]);
    }
    if event_id.as_deref().is_some_and(|id| !valid_id(id)) {
        allowed.must(&["invalid_event_id"]);
    }
    let now = oracle.now.unix_timestamp() as f64;
    if exp.is_some_and(|exp| exp <= now) {
        allowed.must(&["token_expired"]);
    }
    if nbf.is_some_and(|nbf| nbf > now) {
        allowed.must(&["token_not_yet_valid"]);
    }
    if let Some(ts) = timestamp {
        match serde_json::from_str::<serde_json::Value>(ts.get()) {
            // A number out of an f64's range: unreadable claims or an unreadable timestamp.
            Err(_) => allowed.must(&["invalid_claims", "invalid_timestamp"]),
            Ok(value) => match parse_timestamp(&value) {
                Err(_) => allowed.must(&["invalid_timestamp"]),
                Ok(t) => {
                    let now = oracle.now;
                    if t < now && now - t > oracle.max_age {
                        allowed.must(&["stale_event"]);
                    }
                    if t > now && t - now > oracle.max_future {
                        allowed.must(&["future_event"]);
                    }
                }
            },
        }
    }
    let event = match (event_type, event_id) {
        (Some(event_type), Some(event_id)) => Some(Signed {
            event_id,
            event_type,
            data: data.map_or("null", |d| d.get()).to_owned(),
        }),
        _ => None,
    };
    (allowed, event)
}

/// A string claim (`None` if absent or null); any other kind refuses the claims.
fn text(fields: &Fields, name: &str, allowed: &mut Allowed) -> Option<String> {
    let v = fields.get(name).filter(|v| !is_null(v))?;
    match serde_json::from_str::<String>(v.get()) {
        Ok(s) => Some(s),
        Err(_) => {
            allowed.must(&["invalid_claims"]);
            None
        }
    }
}

/// A numeric claim (`None` if absent or null); any other kind refuses the claims.
fn number(fields: &Fields, name: &str, allowed: &mut Allowed) -> Option<f64> {
    let v = fields.get(name).filter(|v| !is_null(v))?;
    match serde_json::from_str::<f64>(v.get()) {
        Ok(n) => Some(n),
        Err(_) => {
            allowed.must(&["invalid_claims"]);
            None
        }
    }
}
