//! Where the store keeps things in Redis (after the key prefix):
//!
//! | key | type | what |
//! |---|---|---|
//! | `<E>` | string | event `E` without an entity (the layout of every earlier version) |
//! | `{<K>} e:<E>` | string | event `E` of entity `K` (ordering on) |
//! | `{<K>} entity` | hash | entity `K`: its applied timestamp and its claim |
//! | `{parked} records` | hash | every parked event, by id |
//! | `{parked} bytes` | string | the bytes of all parked records (for the bound) |
//!
//! An event id is visible ASCII, so no key with a space in it is ever an event's key of the
//! first layout: the other keys cannot collide with one. `{<K>}` is a cluster hash tag, so an
//! event and its entity are in one slot (one script covers both), as are the parked keys.

use std::borrow::Cow;

use super::RedisStore;
use crate::event::EventId;

impl RedisStore {
    /// The key of event `id`, of `entity` when ordering applies to it.
    pub(super) fn event_key(&self, id: &EventId, entity: Option<&str>) -> String {
        match entity {
            None => format!("{}{id}", self.prefix),
            Some(entity) => format!("{}{{{}}} e:{id}", self.prefix, tag(entity)),
        }
    }

    /// The key of the record of `entity`.
    pub(super) fn entity_key(&self, entity: &str) -> String {
        format!("{}{{{}}} entity", self.prefix, tag(entity))
    }

    /// The hash of parked records.
    pub(super) fn parked_records_key(&self) -> String {
        format!("{}{{parked}} records", self.prefix)
    }

    /// The byte count of parked records.
    pub(super) fn parked_bytes_key(&self) -> String {
        format!("{}{{parked}} bytes", self.prefix)
    }
}

/// `entity` as the content of a hash tag: never empty and without a brace (which would end the
/// tag early, or leave it empty and the key hashed whole). `%`, `{` and `}` are percent-encoded
/// and the empty key is `%` (which no encoding produces), so distinct entities stay distinct.
fn tag(entity: &str) -> Cow<'_, str> {
    if entity.is_empty() {
        return Cow::Borrowed("%");
    }
    if !entity.contains(['%', '{', '}']) {
        return Cow::Borrowed(entity);
    }
    let mut out = String::with_capacity(entity.len() + 8);
    for c in entity.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of `key` Redis Cluster hashes to find its slot.
    fn hashed(key: &str) -> &str {
        if let Some(open) = key.find('{') {
            if let Some(len) = key[open + 1..].find('}') {
                if len > 0 {
                    return &key[open + 1..open + 1 + len];
                }
            }
        }
        key
    }

    fn store(prefix: &str) -> RedisStore {
        RedisStore::new(
            super::super::RedisStoreConfig::new("redis://127.0.0.1:1").key_prefix(prefix),
        )
        .unwrap()
    }

    #[test]
    fn an_event_and_its_entity_share_a_slot_whatever_the_entity_key() {
        let id = EventId::new("event_1").unwrap();
        for prefix in ["kinde:webhook:", "", "a{b:", "x}{", "{app}:"] {
            let s = store(prefix);
            for entity in [
                "user:kp_1",
                "",
                "}",
                "{",
                "{}",
                "a}b{c",
                "%",
                "%25",
                "user:{x}",
            ] {
                let (e, k) = (s.event_key(&id, Some(entity)), s.entity_key(entity));
                assert_eq!(hashed(&e), hashed(&k), "{prefix:?} {entity:?}: {e} / {k}");
                assert_ne!(e, k);
            }
            assert_eq!(
                hashed(&s.parked_records_key()),
                hashed(&s.parked_bytes_key())
            );
        }
    }

    #[test]
    fn distinct_entities_get_distinct_tags() {
        let keys = ["", "%", "%25", "{", "%7B", "}", "%7D", "a", "a{", "a%7B"];
        let tags: std::collections::HashSet<_> = keys.iter().map(|k| tag(k)).collect();
        assert_eq!(tags.len(), keys.len());
        assert!(tags
            .iter()
            .all(|t| !t.is_empty() && !t.contains(['{', '}'])));
    }

    #[test]
    fn without_an_entity_the_key_is_the_prefix_and_the_id() {
        let s = store("kinde:webhook:");
        let id = EventId::new("event_1").unwrap();
        assert_eq!(s.event_key(&id, None), "kinde:webhook:event_1");
        assert_eq!(
            s.event_key(&id, Some("user:kp_1")),
            "kinde:webhook:{user:kp_1} e:event_1"
        );
        assert_eq!(
            s.entity_key("user:kp_1"),
            "kinde:webhook:{user:kp_1} entity"
        );
        // Every other key holds a space, which no event id does.
        for k in [
            s.event_key(&id, Some("user:kp_1")),
            s.entity_key("user:kp_1"),
            s.parked_records_key(),
            s.parked_bytes_key(),
        ] {
            assert!(EventId::new(k.trim_start_matches("kinde:webhook:")).is_err());
        }
    }
}
