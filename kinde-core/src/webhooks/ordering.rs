//! Ordering: the latest event per entity wins.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::Value;

/// Where each event type's entity is, for [`WebhooksBuilder::ordering`](crate::WebhooksBuilder::ordering).
///
/// Kinde does not deliver in order: a `user.updated` that failed yesterday may succeed today,
/// after today's update. With ordering on, every event of a keyed type is compared with the last
/// one applied to its entity, by the signed `timestamp`: an older one is answered
/// `200 {"status":"superseded"}` without running a handler (and remembered, so its retries are
/// duplicates); a `*.deleted` leaves a tombstone, so an older `created`/`updated` of the entity
/// is superseded too. Equal timestamps are not superseded.
///
/// The documented state-bearing types are keyed by default: `user.created`/`updated`/`deleted`
/// by `data.user.id`, `organization.*` by `data.organization.code`, `role.*` by
/// `data.role.id`, `permission.*` by `data.permission.id`, `subscriber.created` by
/// `data.subscriber.id`. Add other types (billing, anything new) with [`EntityOrdering::key`].
/// Authentication events (`user.authenticated`, `user.authentication_failed`) and types without
/// a key are never superseded; nor is an event whose key cannot be read from its `data` (it goes
/// on to its handler as without ordering).
///
/// ```
/// use kinde_core::EntityOrdering;
/// let ordering = EntityOrdering::latest_wins()
///     .key("customer.plan_changed", "customer", "/customer_id")
///     .key("customer.payment_failed", "customer", "/customer_id");
/// # let _ = ordering;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct EntityOrdering {
    /// event type -> (entity kind, JSON pointer into `data`)
    keys: HashMap<String, (String, String)>,
}

/// Never ordered, whatever is configured: a sign-in does not supersede anything.
const NEVER: &[&str] = &["user.authenticated", "user.authentication_failed"];

impl EntityOrdering {
    /// The documented state-bearing types, keyed by their entity.
    pub fn latest_wins() -> Self {
        let mut keys = HashMap::new();
        let mut add = |types: &[&str], kind: &str, pointer: &str| {
            for t in types {
                keys.insert((*t).to_owned(), (kind.to_owned(), pointer.to_owned()));
            }
        };
        add(
            &["user.created", "user.updated", "user.deleted"],
            "user",
            "/user/id",
        );
        add(
            &[
                "organization.created",
                "organization.updated",
                "organization.deleted",
            ],
            "organization",
            "/organization/code",
        );
        add(
            &["role.created", "role.updated", "role.deleted"],
            "role",
            "/role/id",
        );
        add(
            &[
                "permission.created",
                "permission.updated",
                "permission.deleted",
            ],
            "permission",
            "/permission/id",
        );
        add(&["subscriber.created"], "subscriber", "/subscriber/id");
        Self { keys }
    }

    /// Orders `event_type` by the entity at `pointer` (an RFC 6901 JSON pointer into `data`,
    /// e.g. `/customer_id`), of kind `entity` (events of different types with the same kind and
    /// id are one entity). Replaces the default key of a documented type; authentication events
    /// stay unordered.
    pub fn key(
        mut self,
        event_type: impl Into<String>,
        entity: impl Into<String>,
        pointer: impl Into<String>,
    ) -> Self {
        self.keys
            .insert(event_type.into(), (entity.into(), pointer.into()));
        self
    }

    /// The entity key of an event (`user:kp_1`), read from its raw `data`; `None` when the type
    /// is not ordered or the key cannot be read.
    pub(crate) fn entity_key(&self, event_type: &str, data: &RawValue) -> Option<String> {
        if NEVER.contains(&event_type) {
            return None;
        }
        let (kind, pointer) = self.keys.get(event_type)?;
        let data: Value = serde_json::from_str(data.get()).ok()?;
        let id = match data.pointer(pointer)? {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(format!("{kind}:{id}"))
    }
}

/// Whether completing `event_type` deletes its entity (leaves a tombstone).
pub(crate) fn deletes(event_type: &str) -> bool {
    event_type.ends_with(".deleted")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn documented_types_are_keyed_by_their_entity() {
        let o = EntityOrdering::latest_wins();
        let user = raw(r#"{"user":{"id":"kp_1","email":null}}"#);
        for t in ["user.created", "user.updated", "user.deleted"] {
            assert_eq!(o.entity_key(t, &user).as_deref(), Some("user:kp_1"), "{t}");
        }
        let org = raw(r#"{"organization":{"code":"org_9"}}"#);
        assert_eq!(
            o.entity_key("organization.deleted", &org).as_deref(),
            Some("organization:org_9")
        );
        let role = raw(r#"{"role":{"id":"r1"}}"#);
        assert_eq!(
            o.entity_key("role.updated", &role).as_deref(),
            Some("role:r1")
        );
        let perm = raw(r#"{"permission":{"id":"p1"}}"#);
        assert_eq!(
            o.entity_key("permission.created", &perm).as_deref(),
            Some("permission:p1")
        );
        let sub = raw(r#"{"subscriber":{"id":"s1"}}"#);
        assert_eq!(
            o.entity_key("subscriber.created", &sub).as_deref(),
            Some("subscriber:s1")
        );
    }

    #[test]
    fn authentication_events_unknown_types_and_unreadable_keys_are_not_ordered() {
        let o = EntityOrdering::latest_wins().key("user.authenticated", "user", "/user/id");
        let user = raw(r#"{"user":{"id":"kp_1"}}"#);
        assert_eq!(o.entity_key("user.authenticated", &user), None);
        assert_eq!(o.entity_key("user.authentication_failed", &user), None);
        assert_eq!(o.entity_key("access_request.created", &user), None);
        assert_eq!(o.entity_key("customer.plan_changed", &user), None);
        for data in [
            r#"{"user":{}}"#,
            r#"{"user":{"id":""}}"#,
            r#"{"user":{"id":{}}}"#,
            "[1]",
        ] {
            assert_eq!(o.entity_key("user.updated", &raw(data)), None, "{data}");
        }
    }

    #[test]
    fn custom_keys_order_other_types() {
        let o =
            EntityOrdering::latest_wins().key("customer.plan_changed", "customer", "/customer_id");
        let data = raw(r#"{"customer_id":"c_1","plan":{"code":"pro"}}"#);
        assert_eq!(
            o.entity_key("customer.plan_changed", &data).as_deref(),
            Some("customer:c_1")
        );
        let numeric = raw(r#"{"customer_id":42}"#);
        assert_eq!(
            o.entity_key("customer.plan_changed", &numeric).as_deref(),
            Some("customer:42")
        );
    }
}
