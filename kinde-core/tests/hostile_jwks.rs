//! A misbehaving JWKS endpoint, end to end through `Webhooks::handle`: every case ends in a
//! clear answer (a 503 naming the JWKS error, or a 401 for a key we refuse), without a handler
//! or store call.
//!
//! No time is asserted. Only cases whose expected outcome *is* a timeout use a short fetch
//! timeout; every other receiver gets a generous one, so a loaded machine cannot turn an
//! expected success into a 503. Each delivery is bounded by a hang guard far above any of them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{assert_answer, Harness};
use kinde_core::testing::{ServerBehaviour, TestEvent, TestIssuer, TestKey};
use kinde_core::verify::{JwksConfig, JwksError};
use kinde_core::{Outcome, VerifyError, WebhookResponse};
use serde_json::{json, Value};

/// For the cases that must time out (a response that never starts or never finishes).
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
/// For every other case: a loopback fetch that should succeed gets all the time it needs.
const GENEROUS_TIMEOUT: Duration = Duration::from_secs(30);
/// Only there to turn a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(120);
const SIZE_BOUND: usize = 16 * 1024;

/// What a case tunes: the cache, and the HTTP fetch.
struct Tune {
    cache: JwksConfig,
    fetch_timeout: Duration,
    max_response_bytes: usize,
}

fn short_timeout(c: &mut Tune) {
    c.fetch_timeout = SHORT_TIMEOUT;
}

/// A receiver (handlers, counting store) fetching keys from a server that behaves so.
async fn receiver(behaviour: ServerBehaviour, tune: impl FnOnce(&mut Tune)) -> Harness {
    let mut t = Tune {
        cache: common::fast_jwks(),
        fetch_timeout: GENEROUS_TIMEOUT,
        max_response_bytes: SIZE_BOUND,
    };
    tune(&mut t);
    let Tune {
        cache,
        fetch_timeout,
        max_response_bytes,
    } = t;
    let h = Harness::with_keys(
        move |server| {
            common::http_keys(server)
                .fetch_timeout(fetch_timeout)
                .max_response_bytes(max_response_bytes)
        },
        move |b| b.jwks_config(cache),
    )
    .await;
    h.server.set_behaviour(behaviour);
    h
}

fn claims() -> Value {
    TestEvent::sample("user.created").into_claims()
}

/// Sends a token; fails the test if no answer comes within the hang guard.
async fn deliver(h: &Harness, token: &str) -> WebhookResponse {
    tokio::time::timeout(HANG_GUARD, h.send(token))
        .await
        .expect("a delivery hung")
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
        // TooLarge, not Timeout: cut at the bound, not after waiting for the (30 s) timeout.
        let err = unavailable(&h, &resp);
        assert!(
            matches!(err, JwksError::TooLarge { .. }),
            "{never_ends:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_response_that_never_starts_times_out_once_for_all_waiting_deliveries() {
    let h = Arc::new(receiver(ServerBehaviour::Hang, short_timeout).await);
    // Signed before anything starts: RSA signing is no part of what is measured here.
    let tokens: Vec<String> = (0..20).map(|_| h.issuer.sign(&claims())).collect();
    let waiting: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let h = h.clone();
            tokio::spawn(async move { deliver(&h, &token).await })
        })
        .collect();
    for task in waiting {
        let resp = task.await.unwrap();
        let err = unavailable(&h, &resp);
        assert!(
            matches!(err, JwksError::Timeout(t) if *t == SHORT_TIMEOUT),
            "{err:?}"
        );
    }
    // Single flight: twenty deliveries waited on one hanging request, not twenty in turn.
    // (The server may not even have read that request before the timeout on a loaded
    // machine: it counts at most one.)
    assert_eq!(h.webhooks.jwks().fetch_count(), 1);
    assert!(h.server.fetch_count() <= 1);
    // The issuer recovers: once the cooldown has passed, a delivery fetches and is handled.
    // This receiver's timeout is short (it had to time out above), so a loaded machine may
    // need a few tries: each one either times out again (503) or succeeds.
    h.server.set_behaviour(ServerBehaviour::Serve);
    let token = h.issuer.sign(&claims());
    let recovered = tokio::time::timeout(HANG_GUARD, async {
        loop {
            tokio::time::sleep(Duration::from_millis(60)).await; // the cooldown is 50 ms
            let resp = h.send(&token).await;
            if resp.status() == 200 {
                break resp;
            }
            assert!(matches!(unavailable(&h, &resp), JwksError::Timeout(_)));
        }
    })
    .await
    .expect("the issuer came back, the receiver did not");
    assert_answer(&recovered, 200, "handled");
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
        let h = receiver(stall.clone(), short_timeout).await;
        let resp = deliver(&h, &h.issuer.sign(&claims())).await;
        let err = unavailable(&h, &resp);
        assert!(
            matches!(err, JwksError::Timeout(t) if *t == SHORT_TIMEOUT),
            "{stall:?}: {err:?}"
        );
    }
    // A slow body that does finish is fine (~40 ms of trickle, under the generous timeout).
    let quick = ServerBehaviour::Trickle {
        chunk: 128,
        every: Duration::from_millis(10),
    };
    let h = receiver(quick, |_| {}).await;
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
        c.max_response_bytes = kinde_core::verify::HttpKeySource::DEFAULT_MAX_BYTES;
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
        c.cache = c.cache.clone().max_keys(1000);
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

#[tokio::test]
async fn a_key_that_disappears_is_trusted_until_the_ttl() {
    // A TTL no test outlives: within it the cached key is trusted, with no refetch.
    let h = receiver(ServerBehaviour::Serve, |c| {
        c.cache = c.cache.clone().default_ttl(Duration::from_secs(3600))
    })
    .await;
    h.issuer.rotate_to(TestKey::secondary()); // publishes both, signs with the secondary
    let by_primary = || TestKey::primary().sign(&claims());
    assert_answer(&deliver(&h, &by_primary()).await, 200, "handled");
    h.issuer.unpublish("test-primary");
    assert_answer(&deliver(&h, &by_primary()).await, 200, "handled");
    assert_eq!(h.server.fetch_count(), 1);
}

#[tokio::test]
async fn a_key_that_disappears_is_refused_once_the_ttl_has_passed() {
    let ttl = Duration::from_millis(10);
    let h = receiver(ServerBehaviour::Serve, |c| {
        c.cache = c.cache.clone().default_ttl(ttl)
    })
    .await;
    h.issuer.rotate_to(TestKey::secondary());
    let by_primary = || TestKey::primary().sign(&claims());
    assert_answer(&deliver(&h, &by_primary()).await, 200, "handled");
    h.issuer.unpublish("test-primary");
    tokio::time::sleep(ttl * 5).await; // past the TTL: a lower bound, not a timing assertion
                                       // Refetched, and the removed key is refused (401: forged, not "retry later").
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
    assert_eq!(h.calls.count(), 2);
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
