//! Kinde events: the envelope every event shares ([`EventMeta`]), the event a handler gets
//! ([`Event<T>`]), and one lenient type per documented trigger.
//!
//! Typed handlers get `Event<UserCreated>` (and friends); untyped ones (`on_type`, the fallback)
//! get [`Event`] — `Event<serde_json::Value>` — with the raw `data` and [`Event::parse`].
//!
//! The typed structs are as lenient as Kinde's real payloads: only an entity's identity
//! (`user.id`, `organization.code`, `role.id`, …) is required; every other field may be absent or
//! `null` and reads as `None` (or an empty list), never an invented default.
//!
//! ```
//! use kinde_core::event::{KindeEvent, UserCreated};
//! let created: UserCreated = serde_json::from_str(r#"{"user":{"id":"kp_1","email":null}}"#).unwrap();
//! assert_eq!(created.user.id, "kp_1");
//! assert_eq!(created.user.email, None);
//! assert_eq!(created.user.is_suspended, None); // absent: not known, not `false`
//! assert_eq!(UserCreated::TYPE, "user.created");
//! ```

mod data;
mod id;
mod timestamp;

pub use data::*;
pub(crate) use id::is_valid_id;
pub use id::{EventId, InvalidEventId, MAX_ID_LEN};
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
        Self::from_wire(s.into())
    }
}

impl From<Source> for String {
    fn from(s: Source) -> Self {
        s.as_str().to_owned()
    }
}

impl Source {
    /// The value as read: a known one costs no copy.
    pub(crate) fn from_wire(s: std::borrow::Cow<'_, str>) -> Self {
        match &*s {
            "admin" => Source::Admin,
            "api" => Source::Api,
            "user" => Source::User,
            _ => Source::Other(s.into_owned()),
        }
    }

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
    pub event_id: EventId,
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
    /// With ordering on ([`WebhooksBuilder::ordering`](crate::WebhooksBuilder::ordering)): the
    /// entity the event is about, e.g. `user:kp_1`.
    pub entity_key: Option<String>,
    /// With ordering on: the signed `timestamp` of the entity's last applied event before this
    /// one (always older, or equal), for handlers that merge instead of overwriting.
    pub previous_applied_at: Option<OffsetDateTime>,
}

impl EventMeta {
    /// Envelope fields with this id, type and timestamp, and nothing else (for tests and replays).
    pub fn new(
        event_id: EventId,
        event_type: impl Into<String>,
        timestamp: OffsetDateTime,
    ) -> Self {
        Self {
            event_id,
            event_type: event_type.into(),
            source: None,
            timestamp,
            event_timestamp: None,
            ip_address: None,
            webhook_id: None,
            entity_key: None,
            previous_applied_at: None,
        }
    }
}

/// Raw JSON of an event type without a published schema.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UnknownEvent {
    /// The `type` string as sent.
    pub event_type: String,
    /// The `data` as sent.
    pub data: serde_json::Value,
}

/// A verified event: its envelope and its `data`.
///
/// `T` is the typed data for a typed handler (`Event<UserCreated>`), or the raw JSON
/// (`Event`, i.e. `Event<serde_json::Value>`) for `on_type` handlers and the fallback.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event<T = serde_json::Value> {
    /// Envelope fields (event id, type, timestamp, source, …).
    pub meta: EventMeta,
    /// The `data`.
    pub data: T,
}

impl<T> Event<T> {
    /// An event from its parts (for tests and replays).
    pub fn new(meta: EventMeta, data: T) -> Self {
        Self { meta, data }
    }

    /// The signed event id.
    pub fn id(&self) -> &EventId {
        &self.meta.event_id
    }

    /// The event type, e.g. `user.created`.
    pub fn event_type(&self) -> &str {
        &self.meta.event_type
    }
}

impl Event<serde_json::Value> {
    /// Reads the raw `data` as `T`: a documented type (`e.parse::<UserCreated>()`) or any
    /// `Deserialize` type of your own (for billing and other unpublished events).
    ///
    /// ```
    /// use kinde_core::event::{Event, EventMeta, UserDeleted};
    /// # let meta = EventMeta::new("event_1".parse().unwrap(), "user.deleted", time::OffsetDateTime::UNIX_EPOCH);
    /// let e = Event::new(meta, serde_json::json!({"user": {"id": "kp_1"}}));
    /// let deleted: UserDeleted = e.parse().unwrap();
    /// assert_eq!(deleted.user.id, "kp_1");
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }

    /// The typed payload: the arm of [`EventPayload`] for a documented type (an error if its
    /// `data` does not match), [`EventPayload::Unknown`] for every other type.
    pub fn into_payload(self) -> Result<Event<EventPayload>, serde_json::Error> {
        let data = EventPayload::from_value(&self.meta.event_type, self.data)?;
        Ok(Event {
            meta: self.meta,
            data,
        })
    }
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
