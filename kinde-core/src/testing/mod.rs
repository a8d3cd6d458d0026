//! The test kit (feature `testing`): fixture and generated RSA keys, a local issuer that signs
//! any event and serves its JWKS on a loopback port, sample payloads and a manual clock.
//!
//! Test handlers end to end with no Kinde account and no network:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use kinde_core::testing::{TestIssuer, TestEvent};
//! use kinde_core::{Webhooks, event::{Event, UserCreated}};
//!
//! let issuer = TestIssuer::new();
//! let url = issuer.serve().await.url(); // serves as long as `issuer` lives
//! let webhooks = Webhooks::builder()
//!     .issuer(url)
//!     .on(|e: Event<UserCreated>| async move { assert_eq!(e.data.user.id, "kp_0a1b2c3d") })
//!     .build()
//!     .unwrap();
//! let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
//! let resp = webhooks.handle(&kinde_core::testing::http::HeaderMap::new(), token.as_bytes()).await;
//! assert_eq!(resp.status(), 200);
//! # }
//! ```
//!
//! Through a whole app instead (axum here; `kinde-actix` has the actix-web equivalent):
//! [`TestIssuer::delivery`] builds the `http::Request` Kinde would send.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use kinde_core::testing::{TestEvent, TestIssuer};
//! let issuer = TestIssuer::new();
//! let request = issuer
//!     .delivery(TestEvent::sample("user.deleted"))
//!     .path("/hooks/kinde")
//!     .webhook_id("msg_1")
//!     .into_request();
//! assert_eq!(request.uri(), "/hooks/kinde");
//! assert_eq!(request.headers()["content-type"], "application/jwt");
//! # }
//! ```
//!
//! The crates a test needs are re-exported: [`http`], [`serde_json`], [`time`].

mod keys;
mod mount;
mod server;
mod store_suite;

pub use keys::{sign_hs256, TestKey};
pub use mount::{MountError, MountProbe, PROBE_BODY, PROBE_TIMEOUT, PROBE_WEBHOOK_ID};
pub use server::{JwksServer, ServerBehaviour};
pub use store_suite::check_store_protocol;
pub use {http, serde_json, time};

use bytes::Bytes;
use http_body_util::Full;

use std::sync::{Arc, Mutex, RwLock};

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::event::KindeEvent;

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the time forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A local Kinde issuer: a set of keys, one of which signs, and its JWKS. Clones share keys
/// and servers.
#[derive(Debug, Clone)]
pub struct TestIssuer {
    state: Arc<RwLock<IssuerKeys>>,
    /// The JWKS servers this issuer started: they run as long as the issuer does.
    servers: Arc<Mutex<Vec<JwksServer>>>,
}

#[derive(Debug)]
struct IssuerKeys {
    published: Vec<TestKey>,
    signer: TestKey,
}

impl Default for TestIssuer {
    fn default() -> Self {
        Self::new()
    }
}

impl TestIssuer {
    /// An issuer publishing and signing with [`TestKey::primary`].
    pub fn new() -> Self {
        Self::with_key(TestKey::primary())
    }

    /// An issuer publishing and signing with `key`.
    pub fn with_key(key: TestKey) -> Self {
        Self {
            state: Arc::new(RwLock::new(IssuerKeys {
                published: vec![key.clone()],
                signer: key,
            })),
            servers: Arc::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, IssuerKeys> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IssuerKeys> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The key that signs.
    pub fn signer(&self) -> TestKey {
        self.read().signer.clone()
    }

    /// Rotates: publishes `key` (keeping the old ones published) and signs with it from now on.
    pub fn rotate_to(&self, key: TestKey) {
        let mut s = self.write();
        if !s.published.iter().any(|k| k.kid() == key.kid()) {
            s.published.push(key.clone());
        }
        s.signer = key;
    }

    /// Stops publishing the key with this `kid` (tokens it signed become unverifiable once the
    /// receiver refetches).
    pub fn unpublish(&self, kid: &str) {
        self.write().published.retain(|k| k.kid() != kid);
    }

    /// The JWKS document, as served.
    pub fn jwks(&self) -> Value {
        jwks_of(&self.read())
    }

    /// Signs claims with the current signer (RS256, its `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        self.signer().sign(claims)
    }

    /// A forgery: signed by [`TestKey::attacker`] under the current signer's real `kid`, so a
    /// receiver finds the key and the signature fails (`401 invalid_signature`).
    pub fn forge(&self, claims: &Value) -> String {
        TestKey::attacker()
            .with_kid(self.signer().kid())
            .sign(claims)
    }

    /// Serves the JWKS on a free loopback port, for as long as this issuer lives (or until
    /// [`JwksServer::stop`]). Needs a tokio runtime.
    pub async fn serve(&self) -> JwksServer {
        self.serve_on(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
    }

    /// Serves the JWKS on this address (e.g. a port a receiver was already told about).
    pub async fn serve_on(&self, addr: std::net::SocketAddr) -> JwksServer {
        // The server reads the keys, not the issuer: no cycle keeps either alive.
        let keys = Arc::downgrade(&self.state);
        let jwks = move || match keys.upgrade() {
            Some(keys) => jwks_of(&keys.read().unwrap_or_else(|e| e.into_inner())).to_string(),
            None => r#"{"keys":[]}"#.to_owned(),
        };
        let server = JwksServer::start(Arc::new(jwks), addr).await;
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(server.clone());
        server
    }

    /// A delivery of `event`, signed by this issuer, as Kinde would POST it.
    pub fn delivery(&self, event: TestEvent) -> Delivery {
        Delivery {
            token: self.sign(&event.into_claims()),
            path: crate::DEFAULT_PATH.to_owned(),
            webhook_id: None,
        }
    }
}

fn jwks_of(keys: &IssuerKeys) -> Value {
    json!({ "keys": keys.published.iter().map(TestKey::jwk).collect::<Vec<_>>() })
}

/// A signed delivery as an `http::Request`, for tests that drive a whole app (an axum
/// `Router` with `tower::ServiceExt::oneshot`, say) without a socket.
#[derive(Debug, Clone)]
#[must_use]
pub struct Delivery {
    token: String,
    path: String,
    webhook_id: Option<String>,
}

impl Delivery {
    /// The path to POST to (default `/kinde/webhook`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The `webhook-id` header (none by default).
    pub fn webhook_id(mut self, id: impl Into<String>) -> Self {
        self.webhook_id = Some(id.into());
        self
    }

    /// The signed token (the body).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `POST <path>` with `Content-Type: application/jwt`, the `webhook-id` header if set, and
    /// the token as the body.
    pub fn into_request(self) -> http::Request<Full<Bytes>> {
        let mut builder =
            http::Request::post(self.path).header(http::header::CONTENT_TYPE, "application/jwt");
        if let Some(id) = self.webhook_id {
            builder = builder.header("webhook-id", id);
        }
        builder
            .body(Full::new(Bytes::from(self.token)))
            .expect("a request from a path and visible-ASCII headers")
    }
}

/// How many RS256 signatures each crypto backend has checked in this process so far.
///
/// Each counter is incremented inside that backend's own verification call, so a test can see
/// which backend verified a delivery (the other stays unchanged; a backend compiled out stays
/// at zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verifications {
    /// Checked by aws-lc-rs.
    pub aws_lc_rs: u64,
    /// Checked by RustCrypto's `rsa`.
    pub rust_crypto: u64,
}

/// The signature checks made so far, per backend.
///
/// ```
/// let before = kinde_core::testing::verifications();
/// // ... a delivery verified by Webhooks::handle ...
/// let after = kinde_core::testing::verifications();
/// assert!(after.aws_lc_rs >= before.aws_lc_rs);
/// ```
pub fn verifications() -> Verifications {
    let (aws_lc_rs, rust_crypto) = crate::verify::crypto::counters::read();
    Verifications {
        aws_lc_rs,
        rust_crypto,
    }
}

/// A unique event id in Kinde's format.
pub fn unique_event_id() -> String {
    format!("event_{:032x}", rand::random::<u128>())
}

/// RFC 3339 with microseconds, as Kinde sends it.
pub fn kinde_timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The claims of a webhook token under construction.
#[derive(Debug, Clone)]
#[must_use]
pub struct TestEvent {
    claims: Map<String, Value>,
}

impl TestEvent {
    /// An event of any type with this `data`, a unique `event_id`, `source: admin` and the
    /// current time.
    pub fn raw(event_type: &str, data: Value) -> Self {
        let mut claims = Map::new();
        claims.insert("data".into(), data);
        claims.insert("event_id".into(), Value::String(unique_event_id()));
        claims.insert("source".into(), json!("admin"));
        claims.insert(
            "timestamp".into(),
            Value::String(kinde_timestamp(OffsetDateTime::now_utc())),
        );
        claims.insert("type".into(), json!(event_type));
        Self { claims }
    }

    /// A typed event.
    pub fn typed<T: KindeEvent>(data: &T) -> Self {
        Self::raw(T::TYPE, serde_json::to_value(data).unwrap_or_default())
    }

    /// A realistic event of a documented type (see [`sample_data`]), or `{}` data for others.
    pub fn sample(event_type: &str) -> Self {
        Self::raw(
            event_type,
            sample_data(event_type).unwrap_or_else(|| json!({})),
        )
    }

    /// Sets `event_id`.
    pub fn event_id(self, id: impl Into<String>) -> Self {
        self.claim("event_id", Value::String(id.into()))
    }

    /// Sets `timestamp`.
    pub fn timestamp(self, t: OffsetDateTime) -> Self {
        self.claim("timestamp", Value::String(kinde_timestamp(t)))
    }

    /// Sets (or, with `Value::Null`, keeps as null) any claim.
    pub fn claim(mut self, key: &str, value: Value) -> Self {
        self.claims.insert(key.into(), value);
        self
    }

    /// Removes a claim.
    pub fn without(mut self, key: &str) -> Self {
        self.claims.remove(key);
        self
    }

    /// The `event_id`.
    pub fn id(&self) -> &str {
        self.claims
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The claims, ready to sign.
    pub fn into_claims(self) -> Value {
        Value::Object(self.claims)
    }
}

fn user(id: &str) -> Value {
    json!({
        "id": id, "email": format!("{id}@example.com"), "first_name": "Ada", "last_name": "Lovelace",
        "username": null, "phone": null, "is_password_reset_requested": false, "is_suspended": false,
        "organizations": [{"code": "org_1", "roles": [{"id": "role_1", "key": "admin"}], "permissions": null}]
    })
}

/// The user id in every user sample ([`sample_data`]).
pub const SAMPLE_USER_ID: &str = "kp_0a1b2c3d";
/// The organization code in the samples (also the user's one membership).
pub const SAMPLE_ORG_CODE: &str = "org_1";
/// The role id in the samples (also the user's role in [`SAMPLE_ORG_CODE`]).
pub const SAMPLE_ROLE_ID: &str = "role_1";
/// The permission id in the samples.
pub const SAMPLE_PERMISSION_ID: &str = "perm_1";
/// The subscriber id in the `subscriber.created` sample.
pub const SAMPLE_SUBSCRIBER_ID: &str = "sub_1";

/// Realistic `data` for each of the 16 documented types, written from Kinde's documentation
/// (nullable fields are `null` where real payloads send them so).
///
/// The ids are fixed: the user is [`SAMPLE_USER_ID`] (`kp_0a1b2c3d`, email
/// `kp_0a1b2c3d@example.com`, Ada Lovelace, member of [`SAMPLE_ORG_CODE`] as role
/// [`SAMPLE_ROLE_ID`]), the organization is [`SAMPLE_ORG_CODE`] (`org_1`, "Acme", handle
/// `acme`), the role [`SAMPLE_ROLE_ID`] (`role_1`, key `admin`), the permission
/// [`SAMPLE_PERMISSION_ID`] (`perm_1`, key `read:reports`), the subscriber
/// [`SAMPLE_SUBSCRIBER_ID`] (`sub_1`). `None` for a type without a published schema.
///
/// ```
/// use kinde_core::testing::{sample_data, SAMPLE_USER_ID};
/// assert_eq!(sample_data("user.deleted").unwrap()["user"]["id"], SAMPLE_USER_ID);
/// assert!(sample_data("passkey.added").is_none());
/// ```
pub fn sample_data(event_type: &str) -> Option<Value> {
    Some(match event_type {
        "user.created" | "user.updated" => json!({"user": user(SAMPLE_USER_ID)}),
        "user.deleted" | "user.authenticated" | "user.authentication_failed" => {
            json!({"user": {"id": SAMPLE_USER_ID}})
        }
        "access_request.created" => json!({"access_request": {
            "email": "ada@example.com", "first_name": "Ada", "last_name": null, "user_id": "kp_0a1b2c3d"}}),
        "organization.created" => json!({"organization": {
            "code": "org_1", "name": "Acme", "handle": "acme", "external_id": null}}),
        "organization.updated" => json!({"organization": {
            "code": "org_1", "name": "Acme", "handle": "acme", "external_id": "crm-42",
            "is_allow_registrations": true}}),
        "organization.deleted" => json!({"organization": {"code": "org_1"}}),
        "permission.created" | "permission.updated" => json!({"permission": {
            "id": "perm_1", "key": "read:reports", "name": "Read reports", "description": null}}),
        "permission.deleted" => json!({"permission": {"id": "perm_1"}}),
        "role.created" | "role.updated" => json!({"role": {
            "id": "role_1", "key": "admin", "name": "Admin", "description": "All access",
            "is_default_role": false}}),
        "role.deleted" => json!({"role": {"id": "role_1"}}),
        "subscriber.created" => json!({"subscriber": {
            "id": "sub_1", "email": "sub@example.com", "first_name": null, "last_name": null,
            "user_id": null}}),
        _ => return None,
    })
}

/// Claims of a tenant access token (signed with the same keys as webhooks, but not one).
pub fn access_token_claims() -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "aud": ["https://api.example.com"], "azp": "client_1", "exp": now + 3600, "iat": now,
        "iss": "https://acme.kinde.com", "jti": "j1", "scp": ["openid"], "sub": "kp_1"
    })
}
