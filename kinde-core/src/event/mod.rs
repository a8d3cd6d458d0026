//! Typed Kinde events: the envelope every event shares, and one type per documented trigger.
//!
//! Parsing dispatches on `type` first and then reads `data` with that type's schema, so a known
//! type with a broken `data` is an error (answered 500 so Kinde retries) and never silently
//! becomes [`EventPayload::Unknown`].
//!
//! ```
//! use kinde_core::event::{EventPayload, KindeEvent, UserCreated};
//! let data = serde_json::value::RawValue::from_string(
//!     r#"{"user":{"id":"kp_1","email":null,"is_password_reset_requested":false,"is_suspended":false,"organizations":[]}}"#.into(),
//! ).unwrap();
//! let payload = EventPayload::parse("user.created", &data).unwrap();
//! let created = UserCreated::from_payload(payload).unwrap();
//! assert_eq!(created.user.id, "kp_1");
//! assert_eq!(created.user.email, None);
//! ```

mod data;
mod timestamp;

pub use data::*;
pub use timestamp::{parse_timestamp, parse_timestamp_str, TimestampError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who caused the event (`source`). Unknown values are kept, not rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum Source {
    /// Changed by an admin in the Kinde dashboard.
    Admin,
    /// Changed through the management API.
    Api,
    /// Caused by the user (sign-up, sign-in, profile change).
    User,
    /// A value this version does not know, kept verbatim.
    Other(String),
}

impl From<String> for Source {
    fn from(s: String) -> Self {
        match s.as_str() {
            "admin" => Source::Admin,
            "api" => Source::Api,
            "user" => Source::User,
            _ => Source::Other(s),
        }
    }
}

impl From<Source> for String {
    fn from(s: Source) -> Self {
        s.as_str().to_owned()
    }
}

impl Source {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Source::Admin => "admin",
            Source::Api => "api",
            Source::User => "user",
            Source::Other(s) => s,
        }
    }
}

/// The envelope fields every Kinde event carries, besides its `data`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EventMeta {
    /// `event_id`: the same for every delivery and retry of one event; the deduplication key.
    pub event_id: String,
    /// `type`, e.g. `user.created`.
    pub event_type: String,
    /// `source`, when present.
    pub source: Option<Source>,
    /// `timestamp`: when Kinde created the event (signed; the replay window is checked on it).
    pub timestamp: OffsetDateTime,
    /// `event_timestamp`, present in newer payloads.
    pub event_timestamp: Option<OffsetDateTime>,
    /// Top-level `ip_address` (on `user.authenticated` and `user.authentication_failed`).
    pub ip_address: Option<String>,
    /// The unsigned `webhook-id` header of this delivery, when sent. Informational only.
    pub webhook_id: Option<String>,
}

/// Raw JSON of an event type without a published schema.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UnknownEvent {
    /// The `type` string as sent.
    pub event_type: String,
    /// The `data` object as sent.
    pub data: serde_json::Value,
}

/// A verified event: its envelope and its typed payload.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// Envelope fields.
    pub meta: EventMeta,
    /// The typed `data`.
    pub payload: EventPayload,
}

impl WebhookEvent {
    /// Builds an event from its parts.
    pub fn new(meta: EventMeta, payload: EventPayload) -> Self {
        Self { meta, payload }
    }
}

/// A verified event of one known type, as handed to a typed handler.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event<T> {
    /// Envelope fields (event id, timestamp, source, …).
    pub meta: EventMeta,
    /// The typed `data`.
    pub data: T,
}

/// One of Kinde's documented event types, e.g. [`UserCreated`].
pub trait KindeEvent: DeserializeOwned + Serialize + Send + Sync + 'static {
    /// The Kinde type string, e.g. `user.created`.
    const TYPE: &'static str;
    /// Takes this type's arm out of a payload.
    fn from_payload(payload: EventPayload) -> Option<Self>;
    /// Wraps this event into its payload arm.
    fn into_payload(self) -> EventPayload;
}

#[cfg(test)]
mod tests;
