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
    assert_eq!(
        u.organizations[0].roles.as_ref().unwrap()[0].key.as_deref(),
        Some("admin")
    );
    assert_eq!(u.is_suspended, Some(false));
    assert_eq!(u.organizations[1].roles, None);
}

#[test]
fn null_organizations_read_as_empty() {
    let data =
        json!({"user": {"id": "kp_1", "is_password_reset_requested": true, "organizations": null}});
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
        json!("a string"),
        json!({"role": {"id": 5}}),
        json!({"user": {"id": "kp_1", "is_suspended": "yes"}}),
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

/// The identity fields, by type: the only ones a payload must carry.
fn identity(ty: &str) -> &'static [&'static str] {
    match ty {
        "user.created"
        | "user.updated"
        | "user.deleted"
        | "user.authenticated"
        | "user.authentication_failed" => &["user", "id"],
        t if t.starts_with("organization.") => &["organization", "code"],
        t if t.starts_with("permission.") => &["permission", "id"],
        t if t.starts_with("role.") => &["role", "id"],
        "subscriber.created" => &["subscriber", "id"],
        "access_request.created" => &["access_request"],
        other => panic!("no identity for {other}"),
    }
}

/// Every path to a field of `v` (objects only; a list's objects are walked through `[0]`).
fn field_paths(v: &serde_json::Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                prefix.push(k.clone());
                out.push(prefix.clone());
                field_paths(child, prefix, out);
                prefix.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(format!("[{i}]"));
                field_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn edit(v: &mut serde_json::Value, path: &[String], delete: bool) {
    let (last, parents) = path.split_last().unwrap();
    let mut at = v;
    for p in parents {
        at = match p.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            Some(i) => &mut at[i.parse::<usize>().unwrap()],
            None => &mut at[p.as_str()],
        };
    }
    let obj = at.as_object_mut().unwrap();
    if delete {
        obj.remove(last);
    } else {
        obj.insert(last.clone(), serde_json::Value::Null);
    }
}

/// Whether the field at `path` is an identity: the entity's own (`user.id`), or the one of a
/// reference inside it (an organization membership's `code`, a role's `id`), or a container of
/// one.
fn is_identity(ty: &str, path: &[String]) -> bool {
    let id = identity(ty);
    if path.len() <= id.len() {
        return id.iter().zip(path).all(|(a, b)| a == b);
    }
    match path.last().map(String::as_str) {
        // Inside a list: `organizations[i].code`, `roles[j].id`, `permissions[j].id`.
        Some("code" | "id") => path.iter().any(|p| p.starts_with('[')),
        _ => false,
    }
}

#[test]
fn every_non_identity_field_may_be_absent_or_null() {
    let mut checked = 0;
    for (ty, data) in fixtures() {
        let mut paths = Vec::new();
        field_paths(&data, &mut Vec::new(), &mut paths);
        for path in paths.iter().filter(|p| !is_identity(ty, p)) {
            for delete in [true, false] {
                let mut edited = data.clone();
                edit(&mut edited, path, delete);
                let parsed = EventPayload::parse(ty, &raw(edited.clone()));
                assert!(
                    matches!(&parsed, Ok(p) if p.event_type() == ty && !matches!(p, EventPayload::Unknown(_))),
                    "{ty} with {} {}: {parsed:?}\n{edited}",
                    path.join("."),
                    if delete { "deleted" } else { "null" },
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} variants checked");
}

#[test]
fn a_missing_identity_is_refused() {
    for (ty, data) in fixtures() {
        if ty == "access_request.created" {
            continue; // an access request has no identity of its own
        }
        let id = identity(ty);
        for delete in [true, false] {
            let mut edited = data.clone();
            let path: Vec<String> = id.iter().map(|s| s.to_string()).collect();
            edit(&mut edited, &path, delete);
            assert!(
                EventPayload::parse(ty, &raw(edited)).is_err(),
                "{ty} accepted without {}",
                id.join(".")
            );
        }
    }
}

#[test]
fn an_absent_flag_is_none_not_false() {
    let p = EventPayload::parse("user.created", &raw(json!({"user": {"id": "kp_1"}}))).unwrap();
    let u = UserCreated::from_payload(p).unwrap().user;
    assert_eq!(
        (u.is_suspended, u.is_password_reset_requested),
        (None, None)
    );
    assert!(u.organizations.is_empty());
}

/// The payload of a compact JWS, as JSON.
fn jws_payload(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.trim().split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn every_real_kinde_payload_parses_into_its_typed_event() {
    let real = [
        jws_payload(include_str!(
            "../../tests/data/kinde-user-authenticated.jwt"
        )),
        jws_payload(include_str!("../../tests/data/kinde-user-updated.jwt")),
        serde_json::from_str(include_str!(
            "../../tests/data/kinde-docs-user.created.payload.json"
        ))
        .unwrap(),
    ];
    for claims in real {
        let ty = claims["type"].as_str().unwrap();
        assert!(KNOWN_EVENT_TYPES.contains(&ty));
        let p = EventPayload::parse(ty, &raw(claims["data"].clone()))
            .unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(p.event_type(), ty);
        assert!(!matches!(p, EventPayload::Unknown(_)));
        crate::event::parse_timestamp(&claims["timestamp"]).unwrap();
        if let Some(et) = claims.get("event_timestamp") {
            crate::event::parse_timestamp(et).unwrap();
        }
        match p {
            EventPayload::UserCreated(c) => {
                assert_eq!(c.user.last_name.as_deref(), Some(""));
                assert_eq!(c.user.username, None);
                assert_eq!(c.user.organizations[0].roles, None);
            }
            EventPayload::UserUpdated(u) => {
                assert_eq!(u.user.username.as_deref(), Some("daniel"));
                assert_eq!(u.user.organizations[0].permissions, None);
            }
            EventPayload::UserAuthenticated(a) => assert!(a.user.id.starts_with("kp_")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
