//! The test kit as a user's test suite meets it: handles that cannot be dropped by accident,
//! typed test data for every documented type, documented samples, forgeries, and deliveries as
//! `http::Request`s.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use kinde_core::event::{
    AccessRequest, AccessRequestCreated, KeyRef, Organization, OrganizationCreated,
    OrganizationDeleted, OrganizationRef, OrganizationUpdate, OrganizationUpdated, Permission,
    PermissionCreated, PermissionDeleted, PermissionRef, PermissionUpdated, Role, RoleCreated,
    RoleDeleted, RoleRef, RoleUpdated, Subscriber, SubscriberCreated, User, UserAuthenticated,
    UserAuthenticationFailed, UserCreated, UserDeleted, UserOrganization, UserRef, UserUpdated,
    KNOWN_EVENT_TYPES,
};
use kinde_core::testing::http::HeaderMap;
use kinde_core::testing::{sample_data, TestEvent, TestIssuer, SAMPLE_USER_ID};
use kinde_core::{Event, EventPayload, KindeEvent, State, Webhooks};

type Seen = Arc<std::sync::Mutex<Vec<Event<EventPayload>>>>;

fn receiver(url: String, seen: &Seen) -> Webhooks {
    Webhooks::builder()
        .issuer(url)
        .state(seen.clone())
        .fallback(async |State(seen): State<Seen>, e: Event| {
            seen.lock().unwrap().push(e.into_payload().unwrap());
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_server_lives_as_long_as_its_issuer_even_if_the_handle_is_dropped() {
    let issuer = TestIssuer::new();
    // The trap of the first version: the handle is a temporary, dropped at once.
    let url = issuer.serve().await.url();
    let seen = Seen::default();
    let webhooks = receiver(url, &seen);
    let token = issuer.sign(&TestEvent::sample("user.deleted").into_claims());
    let resp = webhooks.handle(&HeaderMap::new(), token.as_bytes()).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_stopped_server_stops_and_resumes_on_the_same_port() {
    let issuer = TestIssuer::new();
    let server = issuer.serve().await;
    let url = server.url();
    server.stop();
    let seen = Seen::default();
    let webhooks = receiver(url.clone(), &seen);
    let token = issuer.sign(&TestEvent::sample("user.deleted").into_claims());
    let resp = webhooks.handle(&HeaderMap::new(), token.as_bytes()).await;
    assert_eq!(resp.status(), 503, "{:?}", resp.body());
    server.resume().await;
    assert_eq!(server.url(), url);
}

/// One value of every documented type, built from the public constructors only (outside the
/// crate, as a user's test would), with some optional fields set.
fn one_of_each() -> Vec<EventPayload> {
    let mut user = User::new("kp_1");
    user.email = Some("ada@example.com".into());
    user.is_suspended = Some(false);
    let mut membership = UserOrganization::new("org_1");
    let mut role_ref = KeyRef::new("role_1");
    role_ref.key = Some("admin".into());
    membership.roles = Some(vec![role_ref]);
    user.organizations = vec![membership];
    let mut org = Organization::new("org_1");
    org.name = Some("Acme".into());
    let mut org_update = OrganizationUpdate::new("org_1");
    org_update.is_allow_registrations = Some(true);
    let mut permission = Permission::new("perm_1");
    permission.key = Some("read:reports".into());
    let mut role = Role::new("role_1");
    role.is_default_role = Some(false);
    let mut subscriber = Subscriber::new("sub_1");
    subscriber.user_id = Some("kp_1".into());
    let mut access = AccessRequest::new();
    access.email = Some("ada@example.com".into());
    vec![
        UserCreated::new(user.clone()).into_payload(),
        UserUpdated::new(user).into_payload(),
        UserDeleted::new(UserRef::new("kp_1")).into_payload(),
        UserAuthenticated::new(UserRef::new("kp_1")).into_payload(),
        UserAuthenticationFailed::new(UserRef::new("kp_1")).into_payload(),
        AccessRequestCreated::new(access).into_payload(),
        OrganizationCreated::new(org).into_payload(),
        OrganizationUpdated::new(org_update).into_payload(),
        OrganizationDeleted::new(OrganizationRef::new("org_1")).into_payload(),
        PermissionCreated::new(permission.clone()).into_payload(),
        PermissionUpdated::new(permission).into_payload(),
        PermissionDeleted::new(PermissionRef::new("perm_1")).into_payload(),
        RoleCreated::new(role.clone()).into_payload(),
        RoleUpdated::new(role).into_payload(),
        RoleDeleted::new(RoleRef::new("role_1")).into_payload(),
        SubscriberCreated::new(subscriber).into_payload(),
    ]
}

#[tokio::test]
async fn typed_test_data_of_every_documented_type_arrives_as_built() {
    let issuer = TestIssuer::new();
    let seen = Seen::default();
    let webhooks = receiver(issuer.serve().await.url(), &seen);
    let built = one_of_each();
    let types: Vec<&str> = built.iter().map(EventPayload::event_type).collect();
    assert_eq!(types, KNOWN_EVENT_TYPES, "one of each documented type");
    for payload in &built {
        let ev = TestEvent::raw(payload.event_type(), payload.to_data_json());
        let token = issuer.sign(&ev.into_claims());
        let resp = webhooks.handle(&HeaderMap::new(), token.as_bytes()).await;
        assert_eq!(resp.status(), 200, "{}", payload.event_type());
    }
    let got: Vec<EventPayload> = seen.lock().unwrap().drain(..).map(|e| e.data).collect();
    assert_eq!(got, built);
}

#[test]
fn every_documented_type_has_a_sample_with_the_documented_ids() {
    for ty in KNOWN_EVENT_TYPES {
        let data = sample_data(ty).unwrap_or_else(|| panic!("no sample for {ty}"));
        let payload = EventPayload::from_value(ty, data.clone()).unwrap();
        assert_eq!(payload.event_type(), *ty);
        if ty.starts_with("user.") {
            assert_eq!(data["user"]["id"], SAMPLE_USER_ID);
        }
    }
    let created: UserCreated =
        serde_json::from_value(sample_data(UserCreated::TYPE).unwrap()).unwrap();
    assert_eq!(
        created.user.email.as_deref(),
        Some("kp_0a1b2c3d@example.com")
    );
}

#[tokio::test]
async fn a_forgery_is_refused_as_a_bad_signature_under_the_real_kid() {
    let issuer = TestIssuer::new();
    let seen = Seen::default();
    let webhooks = receiver(issuer.serve().await.url(), &seen);
    let forged = issuer.forge(&TestEvent::sample("user.created").into_claims());
    let resp = webhooks.handle(&HeaderMap::new(), forged.as_bytes()).await;
    assert_eq!(
        (resp.status().as_u16(), resp.outcome().code()),
        (401, "invalid_signature")
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_delivery_request_carries_what_kinde_sends() {
    let issuer = TestIssuer::new();
    let request = issuer
        .delivery(TestEvent::sample("user.created").event_id("event_42"))
        .webhook_id("msg_7")
        .into_request();
    assert_eq!(request.method(), "POST");
    assert_eq!(request.uri(), kinde_core::DEFAULT_PATH);
    assert_eq!(request.headers()["content-type"], "application/jwt");
    assert_eq!(request.headers()["webhook-id"], "msg_7");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let seen = Seen::default();
    let webhooks = receiver(issuer.serve().await.url(), &seen);
    let resp = webhooks.handle(&HeaderMap::new(), &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(seen.lock().unwrap()[0].meta.event_id, "event_42");
}
