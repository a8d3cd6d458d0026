//! Every class of bad input: the status, no handler ran, the store was not touched, no panic.

mod common;

use kinde_core::adapter;

use base64::Engine as _;
use common::{assert_answer, Harness};
use jsonwebtoken::{Algorithm, Header};
use kinde_core::testing::{access_token_claims, sign_hs256, TestEvent, TestKey};
use serde_json::json;
use time::OffsetDateTime;

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

async fn refused(h: &Harness, body: impl AsRef<[u8]>, status: u16, code: &str) {
    let resp = h.send(body).await;
    assert_answer(&resp, status, code);
    assert_eq!(h.calls.count(), 0, "a handler ran for {code}");
    assert_eq!(h.store.calls(), 0, "the store was touched for {code}");
}

fn valid(h: &Harness) -> String {
    h.issuer
        .sign(&TestEvent::sample("user.created").into_claims())
}

#[tokio::test]
async fn structural_garbage_is_400() {
    let h = Harness::new().await;
    refused(&h, "", 400, "malformed_token").await;
    refused(&h, "   \n", 400, "malformed_token").await;
    refused(&h, "abc", 400, "malformed_token").await;
    refused(&h, "a.b", 400, "malformed_token").await;
    refused(&h, "a.b.c.d", 400, "malformed_token").await;
    refused(&h, "!!!.@@@.###", 400, "malformed_token").await;
    refused(
        &h,
        [0xff, 0xfe, b'.', 0x00, b'.', 0x80],
        400,
        "malformed_token",
    )
    .await;
    refused(
        &h,
        r#"{"event_id":"x","type":"user.created"}"#,
        400,
        "malformed_token",
    )
    .await;
    // A JSON bomb / deeply nested header: serde's recursion limit refuses it.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    refused(
        &h,
        format!("{}.{}.sig", b64(deep.as_bytes()), b64(b"{}")),
        400,
        "malformed_token",
    )
    .await;
    assert_eq!(h.server.fetch_count(), 0, "garbage made us fetch keys");
}

#[tokio::test]
async fn algorithm_attacks_are_refused_before_any_key_is_touched() {
    let h = Harness::new().await;
    let claims = TestEvent::sample("user.created").into_claims();
    let payload = b64(claims.to_string().as_bytes());
    // alg: none (jsonwebtoken cannot even parse it: 400).
    let none = format!(
        "{}.{payload}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"test-primary"}"#)
    );
    refused(&h, none, 400, "malformed_token").await;
    // HS256 signed with the public key as the secret (key confusion).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-primary".into());
    let hs = sign_hs256(&header, &claims, TestKey::primary().public_pem().as_bytes());
    refused(&h, hs, 401, "unsupported_algorithm").await;
    // Other RSA algorithms with a real key.
    for alg in [Algorithm::PS256, Algorithm::RS512] {
        let mut header = Header::new(alg);
        header.kid = Some("test-primary".into());
        let t = TestKey::primary().sign_with_header(&header, &claims);
        refused(&h, t, 401, "unsupported_algorithm").await;
    }
    // ES256 header on an RS signature.
    let es = format!(
        "{}.{payload}.{}",
        b64(br#"{"alg":"ES256","kid":"test-primary"}"#),
        b64(&[1; 64])
    );
    refused(&h, es, 401, "unsupported_algorithm").await;
    assert_eq!(h.server.fetch_count(), 0);
}

#[tokio::test]
async fn missing_kid_is_401() {
    let h = Harness::new().await;
    let claims = TestEvent::sample("user.created").into_claims();
    let t = TestKey::primary().sign_with_header(&Header::new(Algorithm::RS256), &claims);
    refused(&h, t, 401, "missing_kid").await;
}

#[tokio::test]
async fn forged_tampered_and_truncated_tokens_are_401() {
    let h = Harness::new().await;
    let claims = TestEvent::sample("user.created").into_claims();
    // A valid signature by a key not in the JWKS, under its own kid...
    refused(&h, TestKey::attacker().sign(&claims), 401, "unknown_kid").await;
    // ...and under the issuer's kid.
    let forged = TestKey::attacker().with_kid("test-primary").sign(&claims);
    refused(&h, forged, 401, "invalid_signature").await;
    // Tampered payload: a valid token with its payload swapped.
    let good = valid(&h);
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = claims.clone();
    evil["data"]["user"]["id"] = json!("kp_attacker");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(evil.to_string().as_bytes()),
        parts[2]
    );
    refused(&h, tampered, 401, "invalid_signature").await;
    // Truncated signature.
    let truncated = &good[..good.len() - 10];
    refused(&h, truncated, 401, "invalid_signature").await;
    // Bad base64 in the signature.
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], "***");
    let resp = h.send(bad_sig).await;
    assert!(
        matches!(resp.status().as_u16(), 400 | 401),
        "{:?}",
        resp.body()
    );
    assert_eq!((h.calls.count(), h.store.calls()), (0, 0));
}

#[tokio::test]
async fn an_access_token_from_the_same_issuer_is_not_a_webhook() {
    let h = Harness::new().await;
    refused(
        &h,
        h.issuer.sign(&access_token_claims()),
        401,
        "wrong_token_kind",
    )
    .await;
    // Webhook-looking but carrying an audience: still not ours.
    let mixed = TestEvent::sample("user.created")
        .claim("aud", json!("api"))
        .into_claims();
    refused(&h, h.issuer.sign(&mixed), 401, "wrong_token_kind").await;
    for missing in ["type", "event_id", "timestamp", "data"] {
        let c = TestEvent::sample("user.created")
            .without(missing)
            .into_claims();
        refused(&h, h.issuer.sign(&c), 401, "wrong_token_kind").await;
    }
}

#[tokio::test]
async fn data_that_is_not_an_object_is_not_a_question_of_token_kind() {
    // Present but not an object: a webhook whose data does not fit its type (500, retried),
    // never a 401 "not a webhook". No handler runs.
    let h = Harness::new().await;
    for data in [json!([1]), json!("x"), json!(null)] {
        let not_object = TestEvent::sample("user.created")
            .claim("data", data)
            .into_claims();
        let resp = h.send(h.issuer.sign(&not_object)).await;
        assert_answer(&resp, 500, "unparseable_event");
    }
    assert_eq!(h.calls.count(), 0);
    // A type without a typed handler gets the raw value (here: the fallback).
    let raw = TestEvent::raw("some.new_type", json!([1])).into_claims();
    assert_answer(&h.send(h.issuer.sign(&raw)).await, 200, "handled");
    assert_eq!(h.calls.count(), 1);
}

#[tokio::test]
async fn stale_and_future_timestamps_are_401() {
    let h = Harness::new().await;
    let now = OffsetDateTime::now_utc();
    let stale = TestEvent::sample("user.created").timestamp(now - time::Duration::hours(49));
    refused(&h, h.issuer.sign(&stale.into_claims()), 401, "stale_event").await;
    let future = TestEvent::sample("user.created").timestamp(now + time::Duration::minutes(6));
    refused(
        &h,
        h.issuer.sign(&future.into_claims()),
        401,
        "future_event",
    )
    .await;
    let garbage = TestEvent::sample("user.created").claim("timestamp", json!("yesterday"));
    refused(
        &h,
        h.issuer.sign(&garbage.into_claims()),
        401,
        "invalid_timestamp",
    )
    .await;
    let expired = TestEvent::sample("user.created").claim("exp", json!(now.unix_timestamp() - 10));
    refused(
        &h,
        h.issuer.sign(&expired.into_claims()),
        401,
        "token_expired",
    )
    .await;
    let early = TestEvent::sample("user.created").claim("nbf", json!(now.unix_timestamp() + 600));
    refused(
        &h,
        h.issuer.sign(&early.into_claims()),
        401,
        "token_not_yet_valid",
    )
    .await;
}

#[tokio::test]
async fn the_real_kinde_fixture_is_refused() {
    // A real Kinde token signed by a key we do not have (and long stale).
    let h = Harness::new().await;
    let real = include_str!("data/kinde-user-authenticated.jwt");
    refused(&h, real, 401, "unknown_kid").await;
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(real.trim())
            .unwrap()
            .claims;
    assert_eq!(claims["type"], "user.authenticated");
}

#[tokio::test]
async fn bad_event_ids_and_webhook_ids_are_400() {
    let h = Harness::new().await;
    for id in [
        String::new(),
        "x".repeat(257),
        "event with space".into(),
        "évent".into(),
    ] {
        let c = TestEvent::sample("user.created").event_id(id).into_claims();
        refused(&h, h.issuer.sign(&c), 400, "invalid_event_id").await;
    }
    let token = valid(&h);
    let resp = h.send_with_id(&token, &"w".repeat(10_000)).await;
    assert_answer(&resp, 400, "invalid_webhook_id");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "webhook-id",
        http::HeaderValue::from_bytes(b"msg id\xff").unwrap(),
    );
    assert_answer(
        &h.webhooks.handle(&headers, token.as_bytes()).await,
        400,
        "invalid_webhook_id",
    );
    assert_eq!((h.calls.count(), h.store.calls()), (0, 0));
    // Nothing was verified for the bad headers: not even keys were fetched... after the
    // event-id cases above fetched them once.
    assert_eq!(h.server.fetch_count(), 1);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let h = Harness::new().await;
    let big = vec![b'a'; h.webhooks.body_limit() + 1];
    refused(&h, big, 413, "payload_too_large").await;
    let declared = |n: usize| {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, n.into());
        headers
    };
    let pre = adapter::precheck(
        &h.webhooks,
        &http::Method::POST,
        &declared(10 * 1024 * 1024),
    )
    .unwrap_err();
    assert_answer(&pre, 413, "payload_too_large");
    let get =
        adapter::precheck(&h.webhooks, &http::Method::GET, &http::HeaderMap::new()).unwrap_err();
    assert_answer(&get, 405, "method_not_allowed");
    assert_eq!(get.headers()["allow"], "POST");
    assert!(adapter::precheck(&h.webhooks, &http::Method::POST, &declared(100)).is_ok());
    assert_eq!((h.calls.count(), h.store.calls()), (0, 0));
}
