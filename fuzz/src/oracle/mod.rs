//! What the spec allows for one body, worked out without the receiver, and the check of what the
//! receiver did against it.
//!
//! The oracle reads the body the way the spec describes a Kinde delivery (kinde-core's crate
//! documentation and the status table in `webhooks/outcome.rs`): an RS256 compact JWS, signed by
//! the issuer's key over exactly `header.payload`, whose claims are a webhook inside the replay
//! window. It checks the signature with the `rsa` crate (the receiver uses aws-lc-rs), so a
//! receiver that accepted a bad signature would disagree with it.
//!
//! Where the spec leaves the answer open (two refusals that both apply; a header field the
//! receiver may or may not understand), the verdict lists every answer it allows; where it does
//! not, exactly one family of answers is allowed.

mod claims;
mod token;

use std::collections::{BTreeSet, HashSet};

use serde_json::value::RawValue;

pub use token::{Oracle, Signature};

/// The answers the spec allows for a body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// The body must be refused (with one of `codes`).
    pub refused: bool,
    /// The refusal codes allowed. Empty and not `refused`: the event must be taken.
    pub codes: BTreeSet<&'static str>,
}

impl Allowed {
    /// A rule that refuses the body: one of `codes` is the answer.
    pub(crate) fn must(&mut self, codes: &[&'static str]) {
        self.refused = true;
        self.codes.extend(codes);
    }

    /// A rule the spec leaves open: the body may be refused with one of `codes`, or taken.
    pub(crate) fn may(&mut self, codes: &[&'static str]) {
        self.codes.extend(codes);
    }

    pub(crate) fn merge(&mut self, other: Allowed) {
        self.refused |= other.refused;
        self.codes.extend(other.codes);
    }
}

/// A verified event, as the oracle read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signed `event_id`.
    pub event_id: String,
    /// The signed `type`.
    pub event_type: String,
    /// The raw `data` claim (JSON text; `null` if sent as null).
    pub data: String,
}

/// The oracle's reading of one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The refusals allowed, and whether one is required.
    pub allowed: Allowed,
    /// The event, when the body may be taken (always `Some` when not `refused`).
    pub event: Option<Signed>,
    /// Whether the body carries the issuer's signature.
    pub signature: Signature,
}

impl Verdict {
    pub(crate) fn refuse(codes: &[&'static str], signature: Signature) -> Self {
        let mut allowed = Allowed::default();
        allowed.must(codes);
        Self {
            allowed,
            event: None,
            signature,
        }
    }
}

/// One handler call, as the handlers recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The event id the handler got.
    pub event_id: String,
    /// The event type the handler got.
    pub event_type: String,
}

/// What the receiver did with one body.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The outcome's code (the body of the answer).
    pub code: &'a str,
    /// The HTTP status.
    pub status: u16,
    /// The handler calls made while it was handled.
    pub calls: &'a [Call],
}

/// The event types with a typed handler in the harness, and whether `data` fits each one's
/// documented schema (the public `kinde_core::event` type).
pub fn typed_data_fits(event_type: &str, data: &str) -> Option<bool> {
    use kinde_core::event::{UserCreated, UserDeleted};
    match event_type {
        "user.created" => Some(serde_json::from_str::<UserCreated>(data).is_ok()),
        "user.deleted" => Some(serde_json::from_str::<UserDeleted>(data).is_ok()),
        _ => None,
    }
}

/// The status the spec's table gives each code (`webhooks/outcome.rs`); `None` for a code the
/// table does not have.
pub fn status_of(code: &str) -> Option<u16> {
    Some(match code {
        "handled" | "duplicate" | "ignored" => 200,
        "malformed_token" | "invalid_claims" | "invalid_event_id" | "invalid_webhook_id"
        | "body_read_failed" => 400,
        "invalid_signature"
        | "unknown_kid"
        | "unsupported_algorithm"
        | "unsupported_crit"
        | "missing_kid"
        | "wrong_token_kind"
        | "stale_event"
        | "future_event"
        | "invalid_timestamp"
        | "token_expired"
        | "token_not_yet_valid" => 401,
        "method_not_allowed" => 405,
        "body_timeout" => 408,
        "in_progress" => 409,
        "payload_too_large" => 413,
        "handler_failed" | "unparseable_event" => 500,
        "jwks_unavailable"
        | "kid_refetch_throttled"
        | "store_unavailable"
        | "too_many_deliveries" => 503,
        _ => return None,
    })
}

/// Checks what the receiver did against the verdict, given the ids handled so far in this
/// process (`seen`; `dedup` false once the store may have evicted some of them). Returns the id
/// to remember as handled, or what went wrong.
///
/// What must hold, whatever the body:
/// - the status is the table's for the code, and a handler ran (once) exactly when the answer
///   is `handled`;
/// - a body the spec refuses (no issuer signature over exactly its bytes, or claims that are
///   not a webhook in the window) gets one of the refusals allowed: never a 200, never a handler;
/// - a body the spec takes is `handled` the first time its `event_id` is seen, `duplicate`
///   after (a handler runs at most once per id in the process), `unparseable_event` when a typed
///   handler's `data` does not fit; and the handler gets that id and type;
/// - nothing else: no 409 (deliveries are handled one after the other, so no claim is ever in
///   progress when one arrives), no 503 (static keys, memory store), no `ignored` (a fallback
///   takes every type), no `handler_failed` (the handlers cannot fail).
pub fn judge(
    verdict: &Verdict,
    seen: &HashSet<String>,
    dedup: bool,
    observed: &Observed<'_>,
) -> Result<Option<String>, String> {
    let code = observed.code;
    let Some(status) = status_of(code) else {
        return Err(format!(
            "answered `{code}`, a code the status table does not have"
        ));
    };
    if status != observed.status {
        return Err(format!(
            "answered `{code}` with status {}, the table says {status}",
            observed.status
        ));
    }
    if observed.calls.len() > 1 {
        return Err(format!(
            "one delivery ran handlers {} times: {:?}",
            observed.calls.len(),
            observed.calls
        ));
    }
    let call = observed.calls.first();
    if (code == "handled") != call.is_some() {
        return Err(format!(
            "answered `{code}` but handlers ran {} time(s)",
            observed.calls.len()
        ));
    }
    if !matches!(code, "handled" | "duplicate" | "unparseable_event") {
        if verdict.allowed.codes.contains(code) {
            return Ok(None);
        }
        return Err(if verdict.allowed.refused {
            format!(
                "answered `{code}`; the spec allows only {:?}",
                verdict.allowed.codes
            )
        } else {
            format!(
                "answered `{code}` to a verified webhook the spec takes (allowed refusals: {:?})",
                verdict.allowed.codes
            )
        });
    }
    let event = match &verdict.event {
        Some(event) if !verdict.allowed.refused => event,
        _ => {
            return Err(format!(
                "answered `{code}` to a body the spec refuses (allowed: {:?}; signature: {:?})",
                verdict.allowed.codes, verdict.signature
            ))
        }
    };
    let expected = if seen.contains(&event.event_id) {
        "duplicate"
    } else if typed_data_fits(&event.event_type, &event.data) == Some(false) {
        "unparseable_event"
    } else {
        "handled"
    };
    // Once the store is full it evicts the oldest handled ids (documented): a second run of one
    // is then allowed.
    let evicted_rerun = !dedup && expected == "duplicate" && code == "handled";
    if code != expected && !evicted_rerun {
        return Err(if expected == "duplicate" {
            format!(
                "event {:?} was handled before in this process and is now answered `{code}`",
                event.event_id
            )
        } else {
            format!(
                "event {:?} ({}) should be `{expected}`, answered `{code}`",
                event.event_id, event.event_type
            )
        });
    }
    if let Some(call) = call {
        if call.event_id != event.event_id || call.event_type != event.event_type {
            return Err(format!(
                "the handler got {call:?}, the signed event is {:?} ({})",
                event.event_id, event.event_type
            ));
        }
        return Ok(Some(event.event_id.clone()));
    }
    Ok(None)
}

/// The top-level fields of a JSON object, in order, repeated names kept. Only the values of the
/// names the spec reads are kept (raw); the others are skipped unread, as a receiver that never
/// looks at them does (so, like it, without checking their strings' UTF-8), noting only whether
/// each was `null`.
#[derive(Debug)]
pub(crate) struct Fields(Vec<(String, Slot)>);

#[derive(Debug)]
enum Slot {
    Raw(Box<RawValue>),
    Skipped { null: bool },
}

impl Fields {
    /// Parses a JSON object, keeping the values of `read`; anything but an object (an array
    /// included) is an error.
    pub(crate) fn parse(json: &[u8], read: &[&str]) -> Result<Self, serde_json::Error> {
        use serde::de::DeserializeSeed as _;
        let mut de = serde_json::Deserializer::from_slice(json);
        let fields = Seed(read).deserialize(&mut de)?;
        de.end()?;
        Ok(fields)
    }

    /// The last value of `name` (one of the names read).
    pub(crate) fn get(&self, name: &str) -> Option<&RawValue> {
        self.0.iter().rev().find_map(|(k, v)| match v {
            Slot::Raw(raw) if k == name => Some(&**raw),
            _ => None,
        })
    }

    /// Every value of `name` (one of the names read).
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a RawValue> + 'a {
        self.0.iter().filter_map(move |(k, v)| match v {
            Slot::Raw(raw) if k == name => Some(&**raw),
            _ => None,
        })
    }

    /// Whether `name` is present and not `null` (its last occurrence), read or not.
    pub(crate) fn has_non_null(&self, name: &str) -> bool {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .is_some_and(|(_, v)| match v {
                Slot::Raw(raw) => !is_null(raw),
                Slot::Skipped { null } => !null,
            })
    }

    /// For each occurrence of `name`, read or not: whether it is `null`.
    pub(crate) fn presence<'a>(&'a self, name: &'a str) -> impl Iterator<Item = bool> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| match v {
                Slot::Raw(raw) => is_null(raw),
                Slot::Skipped { null } => *null,
            })
    }

    /// Whether a name appears twice.
    pub(crate) fn repeats(&self) -> bool {
        let mut names = HashSet::new();
        self.0.iter().any(|(k, _)| !names.insert(k.as_str()))
    }

    /// Whether one of `names` appears twice.
    pub(crate) fn repeats_one_of(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|n| self.0.iter().filter(|(k, _)| k == n).nth(1).is_some())
    }

    /// The names.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

struct Seed<'a>(&'a [&'a str]);

impl<'de> serde::de::DeserializeSeed<'de> for Seed<'_> {
    type Value = Fields;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Fields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Seed<'_> {
    type Value = Fields;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = if self.0.contains(&name.as_str()) {
                Slot::Raw(map.next_value::<Box<RawValue>>()?)
            } else {
                let v = map.next_value::<Option<serde::de::IgnoredAny>>()?;
                Slot::Skipped { null: v.is_none() }
            };
            fields.push((name, value));
        }
        Ok(Fields(fields))
    }
}

/// Whether the raw value is JSON `null`.
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// 1 to 256 bytes of visible ASCII: the spec's rule for `event_id` (and, after the verify
/// work, for `type`).
pub(crate) fn valid_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}
