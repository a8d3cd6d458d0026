//! Real-shaped payloads for every documented type (written from the shared protocol reference).

use super::*;
use serde_json::json;
use serde_json::value::RawValue;

fn raw(v: serde_json::Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).unwrap()
}

fn full_user() -> serde_json::Value {
    json!({"user": {
        "id": "kp_c3f7a1b2", "email": "ada@example.com", "first_name": "Ada", "last_name": null,
        "username": null, "phone": null, "is_password_reset_requested": false,
        "is_suspended": false,
        "organizations": [
            {"code": "org_1", "roles": [{"id": "r1", "key": "admin"}], "permissions": null},
            {"code": "org_2"}
        ],
        "a_field_kinde_added_later": 1
    }})
}

/// (type, data) for all 16 types.
pub(crate) fn fixtures() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("user.created", full_user()),
        ("user.updated", full_user()),
        ("user.deleted", json!({"user": {"id": "kp_1"}})),
        ("user.authenticated", json!({"user": {"id": "kp_1"}})),
        (
            "user.authentication_failed",
            json!({"user": {"id": "kp_1"}}),
        ),
        (
            "access_request.created",
            json!({"access_request": {"email": "a@b.c", "first_name": "A", "last_name": "B", "user_id": "kp_2"}}),
        ),
        (
            "organization.created",
            json!({"organization": {"code": "org_1", "name": "Acme", "handle": "acme", "external_id": null}}),
        ),
        (
            "organization.updated",
            json!({"organization": {"code": "org_1", "name": "Acme", "handle": "acme", "external_id": "x1", "is_allow_registrations": true}}),
        ),
        (
            "organization.deleted",
            json!({"organization": {"code": "org_1"}}),
        ),
        (
            "permission.created",
            json!({"permission": {"id": "p1", "key": "read:x", "name": "Read", "description": "d"}}),
        ),
        (
            "permission.updated",
            json!({"permission": {"id": "p1", "key": "read:x", "name": "Read", "description": null}}),
        ),
        ("permission.deleted", json!({"permission": {"id": "p1"}})),
        (
            "role.created",
            json!({"role": {"id": "r1", "key": "admin", "name": "Admin", "description": "d", "is_default_role": false}}),
        ),
        (
            "role.updated",
            json!({"role": {"id": "r1", "key": "admin", "name": "Admin", "description": "", "is_default_role": true}}),
        ),
        ("role.deleted", json!({"role": {"id": "r1"}})),
        (
            "subscriber.created",
            json!({"subscriber": {"id": "s1", "email": "s@x.y", "first_name": null, "last_name": null, "user_id": "kp_3"}}),
        ),
    ]
}

#[test]
fn every_documented_type_parses_to_its_own_arm() {
    let fx = fixtures();
    assert_eq!(fx.len(), 16);
    assert_eq!(KNOWN_EVENT_TYPES.len(), 16);
    for (ty, data) in fx {
        let p = EventPayload::parse(ty, &raw(data.clone())).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(p.event_type(), ty);
        assert!(
            !matches!(p, EventPayload::Unknown(_)),
            "{ty} became Unknown"
        );
        // Round trip through the typed form keeps every documented field.
        let again = EventPayload::parse(ty, &raw(p.to_data_json())).unwrap();
        assert_eq!(again, p, "{ty} did not round-trip");
    }
}

#[test]
fn user_fields_are_read() {
    let p = EventPayload::parse("user.created", &raw(full_user())).unwrap();
    let u = UserCreated::from_payload(p).unwrap().user;
    assert_eq!(u.id, "kp_c3f7a1b2");
    assert_eq!(u.email.as_deref(), Some("ada@example.com"));
    assert_eq!(u.last_name, None);
    assert_eq!(u.organizations.len(), 2);
    assert_eq!(u.organizations[0].roles.as_ref().unwrap()[0].key, "admin");
    assert_eq!(u.organizations[1].roles, None);
}

#[test]
fn null_organizations_read_as_empty() {
    let data = json!({"user": {"id": "kp_1", "is_password_reset_requested": true, "is_suspended": true, "organizations": null}});
    let p = EventPayload::parse("user.updated", &raw(data)).unwrap();
    assert!(UserUpdated::from_payload(p)
        .unwrap()
        .user
        .organizations
        .is_empty());
}

#[test]
fn a_known_type_with_broken_data_is_an_error_not_unknown() {
    for data in [
        json!({"user": {"email": "no id"}}),
        json!({"organisation": {"code": "typo"}}),
        json!([]),
        json!({"role": {"id": 5}}),
    ] {
        for ty in ["user.created", "organization.deleted", "role.deleted"] {
            assert!(
                EventPayload::parse(ty, &raw(data.clone())).is_err(),
                "{ty} accepted {data}"
            );
        }
    }
}

#[test]
fn unknown_types_keep_type_and_raw_data() {
    for ty in [
        "passkey.added",
        "customer.plan_assigned",
        "something.new_in_2030",
    ] {
        let data = json!({"customer_id": "c1", "plan": {"code": "pro", "key": "k"}});
        let p = EventPayload::parse(ty, &raw(data.clone())).unwrap();
        match p {
            EventPayload::Unknown(u) => {
                assert_eq!(u.event_type, ty);
                assert_eq!(u.data, data);
            }
            other => panic!("{ty} parsed as {other:?}"),
        }
    }
}

#[test]
fn source_keeps_unknown_values() {
    let s: Source = serde_json::from_value(json!("admin")).unwrap();
    assert_eq!(s, Source::Admin);
    let s: Source = serde_json::from_value(json!("workflow")).unwrap();
    assert_eq!(s, Source::Other("workflow".into()));
    assert_eq!(serde_json::to_value(&s).unwrap(), json!("workflow"));
}
