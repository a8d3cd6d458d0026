//! The event id: validated once, where the token is verified, and carried everywhere after.

use std::fmt;
use std::sync::Arc;

/// Longest event id (and `webhook-id` header) accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// Whether `id` is an acceptable identifier: 1 to [`MAX_ID_LEN`] bytes of visible ASCII (no
/// space, control or non-ASCII byte). Ids become store keys and log fields, so nothing else gets
/// that far.
pub(crate) fn is_valid_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.iter().all(u8::is_ascii_graphic)
}

/// A Kinde `event_id` (`event_…`): the same for every delivery and retry of one event, and the
/// key every store deduplicates on.
///
/// Always 1 to [`MAX_ID_LEN`] bytes of visible ASCII: the verifier refuses any other value
/// (`400 invalid_event_id`), so a store never sees one. Cheap to clone.
///
/// ```
/// use kinde_core::EventId;
/// let id = EventId::new("event_0190b2c3").unwrap();
/// assert_eq!(id.as_str(), "event_0190b2c3");
/// assert!(EventId::new("has space").is_err());
/// assert!(EventId::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Arc<str>);

/// A string that is not an acceptable [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id must be 1 to 256 bytes of visible ASCII")]
pub struct InvalidEventId;

impl EventId {
    /// Validates `id`.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InvalidEventId> {
        let id = id.as_ref();
        if is_valid_id(id.as_bytes()) {
            Ok(Self(Arc::from(id)))
        } else {
            Err(InvalidEventId)
        }
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EventId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for EventId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for EventId {
    type Err = InvalidEventId;
    fn from_str(s: &str) -> Result<Self, InvalidEventId> {
        Self::new(s)
    }
}

impl TryFrom<String> for EventId {
    type Error = InvalidEventId;
    fn try_from(s: String) -> Result<Self, InvalidEventId> {
        Self::new(s)
    }
}

impl TryFrom<&str> for EventId {
    type Error = InvalidEventId;
    fn try_from(s: &str) -> Result<Self, InvalidEventId> {
        Self::new(s)
    }
}

impl PartialEq<str> for EventId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<String> for EventId {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<&str> for EventId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&*s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_ascii_of_bounded_length() {
        assert!(EventId::new("event_0123").is_ok());
        assert!(EventId::new("a".repeat(MAX_ID_LEN)).is_ok());
        for bad in ["", " ", "a b", "tab\t", "new\nline", "é", "\u{7f}"] {
            assert!(EventId::new(bad).is_err(), "{bad:?}");
        }
        assert!(EventId::new("a".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn serde_validates() {
        let id: EventId = serde_json::from_str("\"event_1\"").unwrap();
        assert_eq!(id, "event_1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"event_1\"");
        assert!(serde_json::from_str::<EventId>("\"a b\"").is_err());
    }
}
