//! Generators and plumbing for `properties.rs`: arbitrary typed events, signed as Kinde would
//! send them, and a receiver whose handlers capture what they were given.

use std::sync::{Arc, Mutex};

use http::HeaderMap;
use kinde_core::event::{
    AccessRequest, AccessRequestCreated, KeyRef, Organization, OrganizationCreated,
    OrganizationUpdate, OrganizationUpdated, PermissionDeleted, PermissionRef, Role, RoleCreated,
    Subscriber, SubscriberCreated, User, UserCreated, UserOrganization, UserUpdated,
    KNOWN_EVENT_TYPES,
};
use kinde_core::testing::{kinde_timestamp, TestEvent, TestIssuer};
use kinde_core::{Event, EventPayload, KindeEvent, State, WebhookResponse, Webhooks};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::json;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::garbage::json_object;

/// Cases of the round-trip property (one signature, one receiver, one key fetch each).
pub const ROUND_TRIP_CASES: u32 = 64;

fn text() -> impl Strategy<Value = String> {
    ".{0,16}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    option::of(text())
}

fn key_refs() -> impl Strategy<Value = Option<Vec<KeyRef>>> {
    option::of(vec(
        (text(), opt_text()).prop_map(|(id, key)| {
            let mut r = KeyRef::new(id);
            r.key = key;
            r
        }),
        0..3,
    ))
}

fn user() -> impl Strategy<Value = User> {
    let org = (text(), key_refs(), key_refs()).prop_map(|(code, roles, permissions)| {
        let mut o = UserOrganization::new(code);
        (o.roles, o.permissions) = (roles, permissions);
        o
    });
    let names = (opt_text(), opt_text(), opt_text(), opt_text(), opt_text());
    let flags = (option::of(any::<bool>()), option::of(any::<bool>()));
    (text(), names, flags, vec(org, 0..3)).prop_map(|(id, names, flags, orgs)| {
        let mut u = User::new(id);
        (u.email, u.first_name, u.last_name, u.username, u.phone) = names;
        (u.is_password_reset_requested, u.is_suspended) = flags;
        u.organizations = orgs;
        u
    })
}

fn unknown_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("passkey.added".to_owned()),
        Just("customer.plan_assigned".to_owned()),
        "[a-z_]{1,12}\\.[a-z_]{1,16}",
        // Any type of 1-256 visible ASCII bytes is accepted as sent (others are 400).
        "[!-~]{1,24}",
    ]
    .prop_filter("a documented type", |t| {
        !KNOWN_EVENT_TYPES.contains(&t.as_str())
    })
}

/// A typed payload of one of nine event types, every field arbitrary.
pub fn payload() -> impl Strategy<Value = EventPayload> {
    let org_update = (
        text(),
        opt_text(),
        opt_text(),
        opt_text(),
        option::of(any::<bool>()),
    );
    let org = (text(), opt_text(), opt_text(), opt_text());
    let role = (
        text(),
        opt_text(),
        opt_text(),
        opt_text(),
        option::of(any::<bool>()),
    );
    let subscriber = (text(), opt_text(), opt_text(), opt_text(), opt_text());
    let access = (opt_text(), opt_text(), opt_text(), opt_text());
    prop_oneof![
        1 => user().prop_map(|u| UserCreated::new(u).into_payload()),
        1 => user().prop_map(|u| UserUpdated::new(u).into_payload()),
        1 => org_update.prop_map(|(code, name, handle, external_id, allow)| {
            let mut o = OrganizationUpdate::new(code);
            (o.name, o.handle, o.external_id) = (name, handle, external_id);
            o.is_allow_registrations = allow;
            OrganizationUpdated::new(o).into_payload()
        }),
        1 => org.prop_map(|(code, name, handle, external_id)| {
            let mut o = Organization::new(code);
            (o.name, o.handle, o.external_id) = (name, handle, external_id);
            OrganizationCreated::new(o).into_payload()
        }),
        1 => role.prop_map(|(id, key, name, description, default)| {
            let mut r = Role::new(id);
            (r.key, r.name, r.description) = (key, name, description);
            r.is_default_role = default;
            RoleCreated::new(r).into_payload()
        }),
        1 => text().prop_map(|id| {
            PermissionDeleted::new(PermissionRef::new(id)).into_payload()
        }),
        1 => subscriber.prop_map(|(id, email, first_name, last_name, user_id)| {
            let mut s = Subscriber::new(id);
            (s.email, s.first_name, s.last_name, s.user_id) =
                (email, first_name, last_name, user_id);
            SubscriberCreated::new(s).into_payload()
        }),
        1 => access.prop_map(|(email, first_name, last_name, user_id)| {
            let mut a = AccessRequest::new();
            (a.email, a.first_name, a.last_name, a.user_id) =
                (email, first_name, last_name, user_id);
            AccessRequestCreated::new(a).into_payload()
        }),
        2 => (unknown_type(), json_object()).prop_map(|(ty, data)| {
            // `UnknownEvent` has no public constructor: parse it, and check it kept the data.
            let raw = serde_json::value::RawValue::from_string(data.to_string()).unwrap();
            let payload = EventPayload::parse(&ty, &raw).unwrap();
            assert!(matches!(&payload, EventPayload::Unknown(u) if u.data == data));
            payload
        }),
    ]
}

/// How `timestamp` is written: the three forms Kinde has been seen to use.
#[derive(Debug, Clone, Copy)]
pub enum TimestampForm {
    /// `2024-04-26T17:42:58.089353-07:00`
    Rfc3339,
    /// `2024-04-26T17:42:58.089353-07` (hour-only offset)
    HourOffset,
    /// `1714178578` (whole seconds)
    Epoch,
}

/// One event as built by the test: what the receiver must hand to the handler.
#[derive(Debug, Clone)]
pub struct BuiltEvent {
    pub payload: EventPayload,
    pub event_id: String,
    pub timestamp: OffsetDateTime,
    pub form: TimestampForm,
    pub event_timestamp: Option<OffsetDateTime>,
    pub source: Option<String>,
    pub ip_address: Option<String>,
    pub webhook_id: Option<String>,
}

impl BuiltEvent {
    /// The handler that must see it: the typed one where registered, else the fallback.
    pub fn expected_handler(&self) -> String {
        match &self.payload {
            EventPayload::UserCreated(_)
            | EventPayload::UserUpdated(_)
            | EventPayload::OrganizationUpdated(_)
            | EventPayload::RoleCreated(_)
            | EventPayload::PermissionDeleted(_)
            | EventPayload::SubscriberCreated(_) => format!("typed {}", self.payload.event_type()),
            _ => "fallback".to_owned(),
        }
    }
}

fn instant() -> impl Strategy<Value = (i64, u32, i8)> {
    // An offset from now in seconds (inside the 48 h replay window), microseconds, and a
    // whole-hour UTC offset.
    (-47 * 3600i64..240, 0u32..1_000_000, -12i8..=14)
}

/// An arbitrary event of [`payload`] with arbitrary envelope fields.
pub fn arbitrary_event() -> impl Strategy<Value = BuiltEvent> {
    let form = prop_oneof![
        Just(TimestampForm::Rfc3339),
        Just(TimestampForm::HourOffset),
        Just(TimestampForm::Epoch)
    ];
    let source = option::of(prop_oneof![
        Just("admin".to_owned()),
        Just("api".to_owned()),
        Just("user".to_owned()),
        text()
    ]);
    let envelope = (
        "[!-~]{1,256}",
        instant(),
        form,
        option::of(instant()),
        source,
        option::of(".{0,40}"),
        option::of("[!-~]{1,64}"),
    );
    (payload(), envelope).prop_map(|(payload, (event_id, at, form, at2, source, ip, wid))| {
        let now = OffsetDateTime::now_utc();
        let at_time = |(secs, micros, hours): (i64, u32, i8)| {
            let t = now.replace_nanosecond(micros * 1000).unwrap() + Duration::seconds(secs);
            t.to_offset(UtcOffset::from_hms(hours, 0, 0).unwrap())
        };
        let mut timestamp = at_time(at);
        if matches!(form, TimestampForm::Epoch) {
            timestamp = timestamp.replace_nanosecond(0).unwrap();
        }
        BuiltEvent {
            payload,
            event_id,
            timestamp,
            form,
            event_timestamp: at2.map(at_time),
            source,
            ip_address: ip,
            webhook_id: wid,
        }
    })
}

/// Signs a built event as Kinde would send it.
pub fn sign_event(issuer: &TestIssuer, e: &BuiltEvent) -> String {
    let rfc = kinde_timestamp(e.timestamp);
    let ts = match e.form {
        TimestampForm::Rfc3339 => json!(rfc),
        // `…+05:00` becomes `…+05` (the offsets are whole hours), `…Z` becomes `…+00`.
        TimestampForm::HourOffset => match rfc.strip_suffix('Z') {
            Some(utc) => json!(format!("{utc}+00")),
            None => json!(&rfc[..rfc.len() - 3]),
        },
        TimestampForm::Epoch => json!(e.timestamp.unix_timestamp()),
    };
    let mut ev = TestEvent::raw(e.payload.event_type(), e.payload.to_data_json())
        .event_id(&e.event_id)
        .claim("timestamp", ts)
        .without("source");
    if let Some(t) = e.event_timestamp {
        ev = ev.claim("event_timestamp", json!(kinde_timestamp(t)));
    }
    if let Some(s) = &e.source {
        ev = ev.claim("source", json!(s));
    }
    if let Some(ip) = &e.ip_address {
        ev = ev.claim("ip_address", json!(ip));
    }
    issuer.sign(&ev.into_claims())
}

// ---- a receiver that captures --------------------------------------------------------------

/// One handler call: which handler, and the event as it was handed over.
#[derive(Debug)]
pub struct Seen {
    pub handler: String,
    pub event: Event<EventPayload>,
}

type Sink = Arc<Mutex<Vec<Seen>>>;

fn typed<T: KindeEvent>(b: kinde_core::WebhooksBuilder<Sink>) -> kinde_core::WebhooksBuilder<Sink> {
    b.on(async |State(sink): State<Sink>, e: Event<T>| {
        let event = Event::new(e.meta, e.data.into_payload());
        let handler = format!("typed {}", T::TYPE);
        sink.lock().unwrap().push(Seen { handler, event });
    })
}

/// A receiver (with its own store) whose handlers record every event they get.
pub struct CapturingReceiver {
    webhooks: Webhooks,
    seen: Sink,
}

impl CapturingReceiver {
    pub fn new(issuer_url: &str) -> Self {
        let seen = Sink::default();
        let mut b = Webhooks::builder().issuer(issuer_url).state(seen.clone());
        b = typed::<UserCreated>(b);
        b = typed::<UserUpdated>(b);
        b = typed::<OrganizationUpdated>(b);
        b = typed::<RoleCreated>(b);
        b = typed::<PermissionDeleted>(b);
        b = typed::<SubscriberCreated>(b);
        let webhooks = b
            .fallback(async |State(sink): State<Sink>, event: Event| {
                let handler = "fallback".to_owned();
                let event = event.into_payload().expect("an unknown type's raw data");
                sink.lock().unwrap().push(Seen { handler, event });
            })
            .build()
            .unwrap();
        Self { webhooks, seen }
    }

    pub async fn send(&self, token: &str, webhook_id: Option<&str>) -> WebhookResponse {
        let mut headers = HeaderMap::new();
        if let Some(id) = webhook_id {
            headers.insert("webhook-id", id.parse().unwrap());
        }
        self.webhooks.handle(&headers, token.as_bytes()).await
    }

    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}
