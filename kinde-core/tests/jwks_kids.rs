//! Honest answers for a `kid`, against a real issuer on a loopback port: 401 `unknown_kid` only
//! when the issuer's word on it is in (a key set fetched after the delivery arrived lacks it,
//! or the JWKS lists it with a key we refuse); 503 `kid_refetch_throttled` with `Retry-After`
//! when the refetch cooldown keeps us from asking.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{assert_answer, fast_jwks, Harness};
use jsonwebtoken::{Algorithm, Header};
use kinde_core::testing::{sign_hs256, ServerBehaviour, TestEvent, TestIssuer, TestKey};
use kinde_core::verify::{
    FetchedJwks, HttpKeySource, JwksCache, JwksConfig, JwksError, KeyError, KeySource,
};
use kinde_core::{Outcome, VerifyError, WebhookResponse};
use serde_json::{json, Value};

/// Only there to turn a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn claims() -> Value {
    TestEvent::sample("user.created").into_claims()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A receiver whose refetch cooldown no test outlives, serving `keys` as its JWKS.
async fn cooling_receiver(keys: Option<Vec<Value>>) -> Harness {
    let cfg = fast_jwks().refetch_cooldown(Duration::from_secs(3600));
    let h = Harness::with(move |b| b.jwks_config(cfg)).await;
    if let Some(keys) = keys {
        let body = json!({ "keys": keys }).to_string();
        h.server.set_behaviour(ServerBehaviour::Body(body.into()));
    }
    h
}

async fn deliver(h: &Harness, token: &str) -> WebhookResponse {
    tokio::time::timeout(HANG_GUARD, h.send(token))
        .await
        .expect("a delivery hung")
}

/// The `Retry-After` of a `503 kid_refetch_throttled`, in seconds.
#[track_caller]
fn throttled(resp: &WebhookResponse) -> u64 {
    assert_answer(resp, 503, "kid_refetch_throttled");
    let Outcome::Rejected(VerifyError::KidRefetchThrottled { retry_after }) = resp.outcome() else {
        panic!("{:?}", resp.outcome())
    };
    let header: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(header >= 1 && header >= retry_after.as_secs(), "{header}");
    header
}

/// The primary fixture key under `kid`, with `field` set to `value` (or removed, for null).
fn primary_with(kid: &str, field: &str, value: Value) -> Value {
    let mut k = TestKey::primary().with_kid(kid).jwk();
    match value {
        Value::Null => {
            k.as_object_mut().unwrap().remove(field);
        }
        v => k[field] = v,
    }
    k
}

/// An RSA JWK whose modulus is `bytes` random bytes with the top byte `top` (no key generation).
fn fabricated_rsa(kid: &str, bytes: usize, top: u8) -> Value {
    let mut n: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>() | 1).collect();
    n[0] = top;
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&n), "e": "AQAB"})
}

#[tokio::test]
async fn a_kid_whose_key_we_refuse_is_known_401_at_once_never_a_refetch_or_a_503() {
    let secret = b"a symmetric key published by mistake";
    let mut ops_encrypt = primary_with("ops-encrypt", "key_ops", json!(["encrypt"]));
    ops_encrypt.as_object_mut().unwrap().remove("use");
    let refused = vec![
        primary_with("use-enc", "use", json!("enc")),
        ops_encrypt,
        primary_with("ops-sign-only", "key_ops", json!(["sign"])),
        primary_with("alg-rs512", "alg", json!("RS512")),
        primary_with("alg-ps256", "alg", json!("PS256")),
        primary_with("e-1", "e", json!(b64(&[1]))),
        primary_with("e-3", "e", json!(b64(&[3]))),
        primary_with("no-n", "n", Value::Null),
        primary_with("no-e", "e", Value::Null),
        fabricated_rsa("16384-bit", 2048, 0x80),
        fabricated_rsa("4097-bit", 513, 0x01),
        fabricated_rsa("2047-bit", 256, 0x7f),
        fabricated_rsa("1024-bit", 128, 0x80),
        json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])}),
        json!({"kty": "oct", "kid": "oct", "k": b64(secret)}),
        json!({"kty": "OKP", "kid": "okp", "crv": "Ed25519", "x": b64(&[3; 32])}),
    ];
    let mut keys = refused.clone();
    keys.push(TestKey::primary().jwk());
    let h = cooling_receiver(Some(keys)).await;
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
    assert_eq!(h.webhooks.jwks().cached_kids(), vec!["test-primary"]);
    for key in &refused {
        let kid = key["kid"].as_str().unwrap();
        // Signed by the very key material published under that kid where there is one: a
        // signature it would verify, by a key that is not an RS256 signing key.
        let token = TestKey::primary().with_kid(kid).sign(&claims());
        assert_answer(&deliver(&h, &token).await, 401, "unknown_kid");
    }
    // No refetch for any of them, though the cooldown would have made a missing kid a 503...
    assert_eq!(h.server.fetch_count(), 1);
    let forged = TestKey::attacker()
        .with_kid("nobody-publishes-this")
        .sign(&claims());
    throttled(&deliver(&h, &forged).await);
    // ...and HS256 with the published symmetric key is refused before any key is looked at.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("oct".into());
    let hs = sign_hs256(&header, &claims(), secret);
    assert_answer(&deliver(&h, &hs).await, 401, "unsupported_algorithm");
    assert_eq!((h.calls.count(), h.server.fetch_count()), (1, 1));
}

#[tokio::test]
async fn a_set_of_only_refused_keys_is_no_key_set() {
    let keys = vec![
        primary_with("use-enc", "use", json!("enc")),
        primary_with("e-3", "e", json!(b64(&[3]))),
        fabricated_rsa("1024-bit", 128, 0x80),
    ];
    let h = cooling_receiver(Some(keys)).await;
    let resp = deliver(&h, &h.issuer.sign(&claims())).await;
    assert_answer(&resp, 503, "jwks_unavailable");
    assert!(matches!(
        resp.outcome(),
        Outcome::Rejected(VerifyError::KeysUnavailable(e)) if matches!(**e, JwksError::NoUsableKeys)
    ));
}

#[tokio::test]
async fn an_unknown_kid_is_401_when_the_receivers_own_refetch_lacks_it() {
    // The first delivery a receiver sees fetches the keys, after it arrived.
    let h = Harness::new().await;
    let forged = || TestKey::attacker().sign(&claims());
    assert_answer(&deliver(&h, &forged()).await, 401, "unknown_kid");
    assert_eq!(h.server.fetch_count(), 1);
    // Later, past the cooldown: the refetch it triggers is the issuer's word on it.
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
    tokio::time::sleep(Duration::from_millis(60)).await; // the cooldown is 50 ms
    assert_answer(&deliver(&h, &forged()).await, 401, "unknown_kid");
    assert_eq!(h.server.fetch_count(), 2);
    assert_eq!((h.calls.count(), h.store.calls()), (1, 2));
}

/// Waits (bounded) until `ready` holds.
async fn until(what: &str, ready: impl Fn() -> bool) {
    tokio::time::timeout(HANG_GUARD, async {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never happened: {what}"));
}

/// The real HTTP source, whose fetches wait until the test opens the gate.
struct Gated {
    inner: HttpKeySource,
    open: tokio::sync::watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl KeySource for Gated {
    async fn fetch(&self) -> Result<FetchedJwks, JwksError> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.inner.fetch().await
    }
}

// One thread, so "arrived before the refetch started" is a matter of order, not of timing.
#[tokio::test(flavor = "current_thread")]
async fn deliveries_that_waited_on_a_refetch_started_after_they_arrived_get_401_with_no_more_fetches(
) {
    let issuer = TestIssuer::new();
    let server = issuer.serve().await;
    // No cooldown: the refetch may start as soon as the first fetch is over.
    let cfg = JwksConfig::default().refetch_cooldown(Duration::ZERO);
    let (gate, open) = tokio::sync::watch::channel(false);
    let source = Gated {
        inner: HttpKeySource::builder(url::Url::parse(&server.jwks_url()).unwrap())
            .fetch_timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        open,
    };
    let cache = Arc::new(JwksCache::new(Arc::new(source), cfg));
    // A first fetch starts, and holds the single-flight lock at the gate...
    let first = tokio::spawn({
        let cache = cache.clone();
        async move { cache.refresh().await }
    });
    until("the first fetch started", || cache.fetch_count() == 1).await;
    // ...two deliveries with kids nobody publishes arrive after it started, and queue.
    let key = |kid: &'static str| {
        let cache = cache.clone();
        tokio::spawn(async move { cache.key(kid).await })
    };
    let (a, b) = (key("kid-a"), key("kid-b"));
    for _ in 0..16 {
        tokio::task::yield_now().await; // both run until they wait on the lock
    }
    assert!(!a.is_finished() && !b.is_finished());
    gate.send_replace(true);
    first.await.unwrap().unwrap();
    // The first key set started before they arrived: not their answer. One of them refetches;
    // the other waited on that very refetch, which started after it arrived: both are told
    // the kid is unknown, and nobody fetches a third time.
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert!(matches!(a, Err(KeyError::UnknownKid)), "{a:?}");
    assert!(matches!(b, Err(KeyError::UnknownKid)), "{b:?}");
    assert_eq!(cache.fetch_count(), 2);
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn a_refetch_the_cooldown_forbids_is_503_with_retry_after_for_a_real_key_and_a_forged_one() {
    let h = cooling_receiver(None).await;
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
    // Kinde rotates inside the cooldown (started by that fetch, or by a stranger's random
    // kid): its first deliveries under the new key are not called forgeries.
    h.issuer.rotate_to(TestKey::secondary());
    let retry_after = throttled(&deliver(&h, &h.issuer.sign(&claims())).await);
    assert!(retry_after <= 3600, "{retry_after}");
    // A random kid gets the same answer: nothing tells the two apart without a fetch.
    let forged = TestKey::attacker().with_kid("random-kid").sign(&claims());
    throttled(&deliver(&h, &forged).await);
    assert_eq!((h.calls.count(), h.server.fetch_count()), (1, 1));
}

#[tokio::test]
async fn retrying_after_the_retry_after_finds_the_rotated_key() {
    let cfg = fast_jwks().refetch_cooldown(Duration::from_secs(1));
    let h = Harness::with(move |b| b.jwks_config(cfg)).await;
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
    h.issuer.rotate_to(TestKey::secondary());
    let rotated = h.issuer.sign(&claims());
    let resp = deliver(&h, &rotated).await;
    // Most likely still inside the 1 s cooldown; on a slow machine it may already be over.
    if resp.status() != 200 {
        let wait = throttled(&resp);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        assert_answer(&deliver(&h, &rotated).await, 200, "handled");
    }
    assert_eq!((h.calls.count(), h.server.fetch_count()), (2, 2));
}
