//! A misbehaving JWKS endpoint, end to end through `Webhooks::handle`: every case ends in a
//! clear answer (a 503 naming the JWKS error, or a 401 for a key we refuse), without a handler
//! or store call, within a small multiple of the configured fetch timeout.
//!
//! Time is asserted only as a bound on hangs (5× the 300 ms fetch timeout), never as a target.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use common::{assert_answer, Harness};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kinde_core::testing::{ServerBehaviour, TestEvent, TestIssuer, TestKey};
use kinde_core::verify::{JwksConfig, JwksError};
use kinde_core::{Outcome, VerifyError, WebhookResponse};
use serde_json::{json, Value};

const FETCH_TIMEOUT: Duration = Duration::from_millis(300);
/// Generous: a bound on a hang, not a performance target.
const HANG_BOUND: Duration = Duration::from_millis(1500);
const SIZE_BOUND: usize = 16 * 1024;

fn hostile_config() -> JwksConfig {
    let mut c = common::fast_jwks();
    c.fetch_timeout = FETCH_TIMEOUT;
    c.max_response_bytes = SIZE_BOUND;
    c
}

/// A receiver (handlers, counting store) fetching keys from a server that behaves so.
async fn receiver(behaviour: ServerBehaviour, tune: impl FnOnce(&mut JwksConfig)) -> Harness {
    let mut cfg = hostile_config();
    tune(&mut cfg);
    let h = Harness::with(move |b| b.jwks_config(cfg)).await;
    h.server.set_behaviour(behaviour);
    h
}

fn claims() -> Value {
    TestEvent::sample("user.created").into_claims()
}

/// Sends a token; asserts the answer came within the hang bound.
async fn deliver(h: &Harness, token: &str) -> WebhookResponse {
    let started = Instant::now();
    let resp = h.send(token).await;
    let took = started.elapsed();
    assert!(
        took < HANG_BOUND,
        "answered after {took:?}: {}",
        resp.outcome().code()
    );
    resp
}

/// Asserts a 503 that touched neither a handler nor the store, and returns its JWKS error.
#[track_caller]
fn unavailable<'a>(h: &Harness, resp: &'a WebhookResponse) -> &'a JwksError {
    assert_answer(resp, 503, "jwks_unavailable");
    assert_eq!((h.calls.count(), h.store.calls()), (0, 0));
    match resp.outcome() {
        Outcome::Rejected(VerifyError::KeysUnavailable(e)) => e,
        other => panic!("not a JWKS error: {other:?}"),
    }
}

fn jwks_of(keys: Vec<Value>) -> Bytes {
    Bytes::from(json!({ "keys": keys }).to_string())
}

/// The issuer's JWKS, padded with trailing spaces (still valid JSON) to `len` bytes.
fn padded_jwks(issuer: &TestIssuer, len: usize) -> Bytes {
    let mut body = issuer.jwks().to_string().into_bytes();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    Bytes::from(body)
}

#[tokio::test]
async fn a_body_over_the_size_bound_is_refused_with_or_without_content_length() {
    let issuer = TestIssuer::new();
    for chunked in [false, true] {
        // The issuer's JWKS padded to `len` bytes, sent with its length or chunked.
        let serve = |len| match padded_jwks(&issuer, len) {
            body if chunked => ServerBehaviour::Chunked(body),
            body => ServerBehaviour::Body(body),
        };
        let h = receiver(serve(SIZE_BOUND), |_| {}).await;
        assert_answer(
            &deliver(&h, &h.issuer.sign(&claims())).await,
            200,
            "handled",
        );
        let h = receiver(serve(SIZE_BOUND + 1), |_| {}).await;
        let resp = deliver(&h, &h.issuer.sign(&claims())).await;
        let err = unavailable(&h, &resp);
        assert!(
            matches!(err, JwksError::TooLarge { limit } if *limit == SIZE_BOUND),
            "chunked: {chunked}, {err:?}"
        );
    }
}

#[tokio::test]
async fn a_body_that_would_not_end_is_cut_at_the_size_bound_without_waiting() {
    for never_ends in [
        // An endless chunked body: the reader stops at 16 KiB rather than buffering on.
        ServerBehaviour::Endless,
        // 10 GiB declared, 1 KiB sent, then silence: refused on the header, with no wait.
        ServerBehaviour::Stall {
            sent: Bytes::from(vec![b' '; 1024]),
            content_length: Some(10 << 30),
        },
    ] {
        let h = receiver(never_ends.clone(), |_| {}).await;
        let resp = deliver(&h, &h.issuer.sign(&claims())).await;
        // TooLarge, not Timeout: neither fetch ran into the 300 ms timeout.
        let err = unavailable(&h, &resp);
        assert!(
            matches!(err, JwksError::TooLarge { .. }),
            "{never_ends:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_response_that_never_starts_times_out_once_for_all_waiting_deliveries() {
    let h = Arc::new(receiver(ServerBehaviour::Hang, |_| {}).await);
    let started = Instant::now();
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.send(h.issuer.sign(&claims())).await })
        })
        .collect();
    for task in waiting {
        let resp = task.await.unwrap();
        let err = unavailable(&h, &resp);
        assert!(
            matches!(err, JwksError::Timeout(t) if *t == FETCH_TIMEOUT),
            "{err:?}"
        );
    }
    assert!(started.elapsed() < HANG_BOUND, "{:?}", started.elapsed());
    // Single flight: twenty deliveries waited on one hanging request. (The server may not even
    // have read that request within the timeout on a loaded machine: it counts at most one.)
    assert_eq!(h.webhooks.jwks().fetch_count(), 1);
    assert!(h.server.fetch_count() <= 1);
    // The issuer recovers: after the cooldown the next delivery fetches and is handled.
    h.server.set_behaviour(ServerBehaviour::Serve);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
}

#[tokio::test]
async fn a_response_that_never_finishes_times_out() {
    let issuer = TestIssuer::new();
    let jwks = Bytes::from(issuer.jwks().to_string());
    let half = jwks.slice(..jwks.len() / 2);
    for stall in [
        // Headers and half the body, with its true Content-Length...
        ServerBehaviour::Stall {
            sent: half.clone(),
            content_length: Some(jwks.len() as u64),
        },
        // ...and chunked.
        ServerBehaviour::Stall {
            sent: half,
            content_length: None,
        },
        // Never silent for more than 40 ms, but 8 bytes at a time: ~2 s for the whole JWKS.
        // The timeout bounds the whole fetch, not the time between two reads.
        ServerBehaviour::Trickle {
            chunk: 8,
            every: Duration::from_millis(40),
        },
    ] {
        let h = receiver(stall.clone(), |_| {}).await;
        let resp = deliver(&h, &h.issuer.sign(&claims())).await;
        let err = unavailable(&h, &resp);
        assert!(matches!(err, JwksError::Timeout(_)), "{stall:?}: {err:?}");
    }
    // A slow body that does finish in time is fine (~40 ms of trickle; a generous timeout so a
    // loaded machine cannot turn it into a timeout).
    let quick = ServerBehaviour::Trickle {
        chunk: 128,
        every: Duration::from_millis(10),
    };
    let h = receiver(quick, |c| c.fetch_timeout = Duration::from_secs(5)).await;
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
}

#[tokio::test]
async fn invalid_json_is_a_503_with_the_parse_error() {
    let jwks = TestIssuer::new().jwks().to_string();
    let bodies: Vec<(Bytes, bool)> = vec![
        (Bytes::from_static(b"not json"), true),
        (Bytes::from_static(b""), true),
        (Bytes::from_static(b"[]"), true),
        (Bytes::from_static(br#"{"keys": {}}"#), true),
        (Bytes::from_static(br#"{"keys": null}"#), true),
        (Bytes::from(jwks[..jwks.len() - 10].to_owned()), true),
        (Bytes::from(format!("\u{feff}{jwks}")), true),
        (Bytes::from("[".repeat(10_000)), true),
        // Valid JSON, nothing usable in it.
        (
            Bytes::from_static(br#"{"keys": [1, "x", null, {}]}"#),
            false,
        ),
        (Bytes::from_static(br#"{"keys": []}"#), false),
    ];
    for (body, is_json_error) in bodies {
        let h = receiver(ServerBehaviour::Body(body.clone()), |_| {}).await;
        let resp = deliver(&h, &h.issuer.sign(&claims())).await;
        let err = unavailable(&h, &resp);
        let expected = if is_json_error {
            matches!(err, JwksError::InvalidJson(_))
        } else {
            matches!(err, JwksError::NoUsableKeys)
        };
        assert!(expected, "{:?}: {err:?}", String::from_utf8_lossy(&body));
    }
}

#[tokio::test]
async fn a_thousand_keys_are_bounded_by_size_then_by_count_and_work_when_allowed() {
    let keys: Vec<Value> = (0..1000)
        .map(|i| TestKey::primary().with_kid(&format!("k-{i}")).jwk())
        .collect();
    let body = jwks_of(keys);
    assert!(body.len() > 128 * 1024);
    let last = TestKey::primary().with_kid("k-999");
    // The default size bound (128 KiB) trips first...
    let h = receiver(ServerBehaviour::Body(body.clone()), |c| {
        c.max_response_bytes = JwksConfig::default().max_response_bytes;
    })
    .await;
    let resp = deliver(&h, &last.sign(&claims())).await;
    assert!(matches!(unavailable(&h, &resp), JwksError::TooLarge { .. }));
    // ...with room for the bytes, the key count bound (64 by default) does...
    let h = receiver(ServerBehaviour::Body(body.clone()), |c| {
        c.max_response_bytes = 1 << 20;
    })
    .await;
    let resp = deliver(&h, &last.sign(&claims())).await;
    assert!(matches!(
        unavailable(&h, &resp),
        JwksError::TooManyKeys {
            count: 1000,
            limit: 64
        }
    ));
    // ...and a receiver configured for 1 000 keys uses the last of them.
    let h = receiver(ServerBehaviour::Body(body), |c| {
        c.max_response_bytes = 1 << 20;
        c.max_keys = 1000;
    })
    .await;
    assert_answer(&deliver(&h, &last.sign(&claims())).await, 200, "handled");
    assert_eq!(h.webhooks.jwks().cached_kids().len(), 1000);
}

#[tokio::test]
async fn a_duplicated_kid_keeps_the_first_key_and_only_it_verifies() {
    let (a, b) = (TestKey::primary(), TestKey::secondary());
    for (first, second) in [(&a, &b), (&b, &a)] {
        let (first, second) = (first.with_kid("dup"), second.with_kid("dup"));
        let body = jwks_of(vec![first.jwk(), second.jwk()]);
        let h = receiver(ServerBehaviour::Body(body), |_| {}).await;
        assert_answer(&deliver(&h, &first.sign(&claims())).await, 200, "handled");
        let resp = deliver(&h, &second.sign(&claims())).await;
        assert_answer(&resp, 401, "invalid_signature");
        assert_eq!(h.calls.count(), 1);
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An RSA JWK whose modulus is `bytes` random bytes with the top bit set (no key generation).
fn fabricated_rsa(kid: &str, bytes: usize, top: u8) -> Value {
    let mut n: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    n[0] = top;
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&n), "e": "AQAB"})
}

#[tokio::test]
async fn moduli_outside_2048_to_4096_bits_are_refused() {
    let outside = [
        fabricated_rsa("16384-bit", 2048, 0x80),
        fabricated_rsa("4097-bit", 513, 0x01),
        fabricated_rsa("2047-bit", 256, 0x7f),
        fabricated_rsa("1024-bit", 128, 0x80),
        fabricated_rsa("512-bit", 64, 0xff),
    ];
    let mut keys = outside.to_vec();
    keys.push(TestKey::primary().jwk());
    let h = receiver(ServerBehaviour::Body(jwks_of(keys)), |_| {}).await;
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
    assert_eq!(h.webhooks.jwks().cached_kids(), vec!["test-primary"]);
    for key in &outside {
        let kid = key["kid"].as_str().unwrap();
        let forged = TestKey::attacker().with_kid(kid).sign(&claims());
        assert_answer(&deliver(&h, &forged).await, 401, "unknown_kid");
    }
    // A set of only such keys is no key set at all.
    let h = receiver(ServerBehaviour::Body(jwks_of(outside.to_vec())), |_| {}).await;
    let resp = deliver(&h, &h.issuer.sign(&claims())).await;
    assert!(matches!(unavailable(&h, &resp), JwksError::NoUsableKeys));
}

#[tokio::test]
async fn keys_of_other_types_and_uses_are_ignored_and_the_rsa_key_still_works() {
    let secret = b"a symmetric key published by mistake";
    let mut enc = TestKey::secondary().with_kid("enc").jwk();
    enc["use"] = json!("enc");
    let keys = vec![
        json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])}),
        json!({"kty": "oct", "kid": "oct", "k": b64(secret)}),
        json!({"kty": "OKP", "kid": "okp", "crv": "Ed25519", "x": b64(&[3; 32])}),
        json!({"kty": "RSA", "kid": "no-modulus", "e": "AQAB"}),
        enc,
        TestKey::primary().jwk(),
    ];
    let h = receiver(ServerBehaviour::Body(jwks_of(keys)), |_| {}).await;
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
    assert_eq!(h.webhooks.jwks().cached_kids(), vec!["test-primary"]);
    // HS256 with the published symmetric key: the algorithm is refused before any key is used.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("oct".into());
    let hs = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap();
    assert_answer(&deliver(&h, &hs).await, 401, "unsupported_algorithm");
    // RS256 under the ignored kids: no such key.
    for kid in ["ec", "oct", "okp", "no-modulus"] {
        let forged = TestKey::attacker().with_kid(kid).sign(&claims());
        assert_answer(&deliver(&h, &forged).await, 401, "unknown_kid");
    }
    // An encryption key is not a signing key, even with a signature it would verify.
    let by_enc = TestKey::secondary().with_kid("enc").sign(&claims());
    assert_answer(&deliver(&h, &by_enc).await, 401, "unknown_kid");
    assert_eq!(h.calls.count(), 1);
}

#[tokio::test]
async fn a_key_that_disappears_is_trusted_until_the_ttl_then_refused() {
    let ttl = Duration::from_secs(1);
    let h = receiver(ServerBehaviour::Serve, |c| c.default_ttl = ttl).await;
    h.issuer.rotate_to(TestKey::secondary()); // publishes both, signs with the secondary
    let by_primary = || TestKey::primary().sign(&claims());
    assert_answer(&deliver(&h, &by_primary()).await, 200, "handled");
    h.issuer.unpublish("test-primary");
    // Within the TTL the cached key is still trusted, with no refetch.
    assert_answer(&deliver(&h, &by_primary()).await, 200, "handled");
    assert_eq!(h.server.fetch_count(), 1);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    // After it: refetched, and the removed key is refused (401: forged, not "retry later").
    assert_answer(&deliver(&h, &by_primary()).await, 401, "unknown_kid");
    assert_eq!(h.server.fetch_count(), 2);
    assert_answer(
        &deliver(&h, &h.issuer.sign(&claims())).await,
        200,
        "handled",
    );
    // It stays refused on later attempts (after the cooldown: another fetch, same answer).
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_answer(&deliver(&h, &by_primary()).await, 401, "unknown_kid");
    assert_eq!(h.calls.count(), 3);
}

#[tokio::test]
async fn no_redirect_is_followed_whatever_its_status_or_target() {
    let target = TestIssuer::new().serve().await;
    for status in [301, 302, 303, 307, 308] {
        let h = receiver(
            ServerBehaviour::RedirectWith(status, target.jwks_url()),
            |_| {},
        )
        .await;
        let resp = deliver(&h, &h.issuer.sign(&claims())).await;
        let err = unavailable(&h, &resp);
        assert!(
            matches!(err, JwksError::Status(s) if *s == status),
            "{err:?}"
        );
    }
    assert_eq!(target.fetch_count(), 0, "a redirect target was fetched");
    // A relative redirect to the other well-known path of the same server: one request only.
    let h = receiver(
        ServerBehaviour::RedirectWith(308, "/.well-known/jwks.json".into()),
        |_| {},
    )
    .await;
    unavailable(&h, &deliver(&h, &h.issuer.sign(&claims())).await);
    assert_eq!(h.server.fetch_count(), 1);
}
