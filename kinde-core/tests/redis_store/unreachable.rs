//! No Redis needed: invalid configurations, an unreachable or mute Redis, failing open.

use std::sync::Arc;
use std::time::Duration;

use kinde_core::store::{
    FailMode, Fenced, IdempotencyStore, RedisConfigError, RedisStore, RedisStoreConfig, StoreError,
};
use kinde_core::testing::{TestEvent, TestIssuer};

use crate::redis_common::{self, answer, deliver, started, Counter, LONG};

/// Far above the store's own bounds: an operation that takes this long was not bounded.
const NOT_BOUNDED: Duration = Duration::from_secs(20);

/// `op`, which must finish on its own well within [`NOT_BOUNDED`].
async fn bounded<T>(what: &str, op: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(NOT_BOUNDED, op)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {NOT_BOUNDED:?}"))
}

#[tokio::test]
async fn the_longest_event_id_reaches_redis() {
    // Ids are valid by construction (`EventId`); the longest one is sent, and finds Redis down.
    let s = RedisStore::open(&redis_common::closed_port_url()).unwrap();
    assert!(matches!(
        redis_common::claim(&s, "x".repeat(256), LONG).await,
        Err(StoreError::Unavailable(_) | StoreError::Timeout(_))
    ));
}

#[test]
fn bad_configurations_are_refused_without_connecting() {
    assert!(matches!(
        RedisStore::new(RedisStoreConfig::from_urls(Vec::<String>::new())),
        Err(RedisConfigError::NoUrl)
    ));
    assert!(matches!(
        RedisStore::open("not a url"),
        Err(RedisConfigError::InvalidUrl { index: 0, .. })
    ));
    assert!(matches!(
        RedisStore::new(RedisStoreConfig::cluster(["redis://127.0.0.1:1", "nope"])),
        Err(RedisConfigError::InvalidUrl { .. })
    ));
    assert!(matches!(
        RedisStore::new(
            RedisStoreConfig::new("redis://127.0.0.1:1").command_timeout(Duration::ZERO)
        ),
        Err(RedisConfigError::ZeroTimeout(_))
    ));
    // Built outside any runtime, for a Redis that is not there.
    let s = RedisStore::new(RedisStoreConfig::cluster(["redis://127.0.0.1:1"])).unwrap();
    assert!(s.is_cluster());
}

#[test]
fn tls_settings_that_cannot_work_are_refused_without_connecting() {
    redis_common::tls::as_an_application_would();
    const NOT_PEM: &[u8] = b"not a certificate";
    let no_block = |e: &RedisConfigError| e.to_string().contains("no CERTIFICATE block");
    // TLS settings with a plain URL would be ignored (single server) or switch TLS on behind
    // the URL's back (cluster): refused, naming the URL.
    for config in [
        RedisStoreConfig::new("redis://127.0.0.1:1").tls_ca_pem(NOT_PEM),
        RedisStoreConfig::cluster(["rediss://127.0.0.1:1", "redis://127.0.0.1:2"])
            .tls_client_cert_pem(NOT_PEM, NOT_PEM),
    ] {
        let e = RedisStore::new(config).unwrap_err();
        assert!(matches!(e, RedisConfigError::TlsNeedsRediss { .. }), "{e}");
    }
    // No certificate check at all is not offered.
    let e = RedisStore::open("rediss://127.0.0.1:1/#insecure").unwrap_err();
    assert!(
        matches!(e, RedisConfigError::InsecureTls { index: 0 }),
        "{e}"
    );
    // A CA bundle or client certificate without a certificate in it.
    let e = RedisStore::new(RedisStoreConfig::new("rediss://127.0.0.1:1").tls_ca_pem(NOT_PEM))
        .unwrap_err();
    assert!(
        matches!(
            e,
            RedisConfigError::InvalidTls {
                what: "CA bundle",
                ..
            }
        ) && no_block(&e),
        "{e}"
    );
    let e = RedisStore::new(
        RedisStoreConfig::new("rediss://127.0.0.1:1").tls_client_cert_pem(NOT_PEM, NOT_PEM),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            RedisConfigError::InvalidTls {
                what: "client certificate",
                ..
            }
        ) && no_block(&e),
        "{e}"
    );
    // A block that is not DER.
    let broken = b"-----BEGIN CERTIFICATE-----\nbm90IGRlcg==\n-----END CERTIFICATE-----\n";
    let e = RedisStore::new(RedisStoreConfig::new("rediss://127.0.0.1:1").tls_ca_pem(broken))
        .unwrap_err();
    assert!(
        matches!(
            e,
            RedisConfigError::InvalidTls {
                what: "CA bundle",
                ..
            }
        ),
        "{e}"
    );
    // Plain URLs without TLS settings are not TLS.
    assert!(!RedisStore::open("redis://127.0.0.1:1").unwrap().is_tls());
}

/// A TCP server that accepts connections and never answers.
async fn mute_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    (url, task)
}

#[tokio::test]
async fn an_unreachable_or_mute_redis_fails_with_a_store_error_within_its_bounds() {
    let bound = Duration::from_millis(300);
    let (mute, task) = mute_server().await;
    for url in [redis_common::closed_port_url(), mute] {
        let s = RedisStore::new(
            RedisStoreConfig::new(&url)
                .command_timeout(bound)
                .connect_timeout(bound),
        )
        .unwrap();
        for _ in 0..3 {
            let r = bounded(&url, redis_common::claim(&s, "e1", LONG)).await;
            assert!(
                matches!(r, Err(StoreError::Unavailable(_) | StoreError::Timeout(_))),
                "{url}: {r:?}"
            );
        }
        assert!(bounded(&url, s.ping()).await.is_err());
    }
    task.abort();
}

#[tokio::test]
async fn a_receiver_built_while_redis_is_down_answers_503_without_hanging() {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    // Default timeouts (1 s): a closed port is refused at once.
    let s = RedisStore::open(&redis_common::closed_port_url()).unwrap();
    let webhooks = redis_common::receiver(jwks.url(), s, &counter, |b| b);
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    for _ in 0..3 {
        let resp = bounded("delivery", deliver(&webhooks, &token)).await;
        assert_eq!(answer(&resp), (503, "store_unavailable"));
    }
    assert_eq!(counter.total(), 0);
}

#[tokio::test]
async fn failing_open_handles_without_deduplication_while_redis_is_down() {
    let s = RedisStore::new(
        RedisStoreConfig::new(redis_common::closed_port_url()).fail_mode(FailMode::Open),
    )
    .unwrap();
    let t = started(redis_common::claim(&s, "e1", LONG).await.unwrap());
    // Nothing was recorded: its token settles nothing, and says so without an error.
    assert_eq!(
        redis_common::complete(&s, "e1", &t, LONG).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(
        redis_common::release(&s, "e1", &t).await.unwrap(),
        Fenced::Applied
    );
    // Listing and unparking need Redis: an error, not an empty list.
    let id = redis_common::event_id("e1");
    assert!(matches!(
        s.parked().await,
        Err(StoreError::Unavailable(_) | StoreError::Timeout(_))
    ));
    assert!(s.parked_event(&id).await.is_err());
    assert!(s.unpark(&id, None).await.is_err());

    // Through a receiver: every delivery runs the handler (the documented price).
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    // Parking on its first failure: a failure while Redis is down is not counted (parking
    // needs Redis), so it is answered 500 (Kinde retries), never `parked`.
    let webhooks = redis_common::receiver(jwks.url(), s, &counter, |b| b.park_after(1));
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());
    counter
        .fail_next
        .store(2, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(
            answer(&deliver(&webhooks, &token).await),
            (500, "handler_failed")
        );
    }
    for _ in 0..2 {
        assert_eq!(answer(&deliver(&webhooks, &token).await), (200, "handled"));
    }
    assert_eq!(counter.runs(&id), 4);
    assert!(webhooks.parked().await.is_err());
}
