//! The JWKS cache against a real issuer on a loopback port.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_answer, fast_jwks, Harness};
use kinde_core::testing::{ServerBehaviour, TestEvent, TestIssuer, TestKey};
use kinde_core::verify::{JwksCache, JwksConfig, JwksError, JwksPath, KeyError, StaticKeySource};
use kinde_core::Webhooks;

fn token(issuer: &TestIssuer) -> String {
    issuer.sign(&TestEvent::sample("user.created").into_claims())
}

#[tokio::test]
async fn keys_are_fetched_once_for_many_deliveries() {
    let h = Harness::new().await;
    for _ in 0..50 {
        assert_answer(&h.send(token(&h.issuer)).await, 200, "handled");
    }
    assert_eq!(h.server.fetch_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kid_seen_by_100_concurrent_requests_causes_one_fetch() {
    // The harness's fetch timeout (30 s) is far above what a loopback fetch takes under load.
    let h = Arc::new(Harness::new().await);
    assert_answer(&h.send(token(&h.issuer)).await, 200, "handled");
    assert_eq!(h.server.fetch_count(), 1);
    // Kinde rotates (after the test's 50 ms cooldown): a new key signs, and is published.
    tokio::time::sleep(Duration::from_millis(60)).await;
    h.issuer.rotate_to(TestKey::secondary());
    // Signed up front, so the hundred deliveries arrive together.
    let tokens: Vec<String> = (0..100).map(|_| token(&h.issuer)).collect();
    let mut tasks = Vec::new();
    for t in tokens {
        let h = h.clone();
        tasks.push(tokio::spawn(async move { h.send(t).await }));
    }
    for t in tasks {
        assert_answer(&t.await.unwrap(), 200, "handled");
    }
    assert_eq!(h.server.fetch_count(), 2);
    assert_eq!(h.calls.count(), 101);
}

#[tokio::test]
async fn a_flood_of_forged_kids_causes_no_fetch_inside_the_cooldown() {
    let issuer = TestIssuer::new();
    let server = issuer.serve().await;
    let cfg = fast_jwks().refetch_cooldown(Duration::from_secs(3600));
    let webhooks = Webhooks::builder()
        .issuer(server.url())
        .jwks_config(cfg)
        .build()
        .unwrap();
    let send = |t: String| {
        let w = webhooks.clone();
        async move { w.handle(&http::HeaderMap::new(), t.as_bytes()).await }
    };
    assert_eq!(send(token(&issuer)).await.status(), 200);
    for i in 0..200 {
        let forged = TestKey::attacker()
            .with_kid(&format!("forged-{i}"))
            .sign(&TestEvent::sample("user.created").into_claims());
        // Not looked up, so not called unknown: "come back when we may look".
        let resp = send(forged).await;
        assert_answer(&resp, 503, "kid_refetch_throttled");
        assert!(resp.headers().contains_key("retry-after"));
    }
    // The first forged kid was within the cooldown of the first fetch: no refetch at all.
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn issuer_down_is_503_then_200_when_it_comes_back() {
    let h = Harness::new().await;
    h.server.stop();
    let t = token(&h.issuer);
    assert_answer(&h.send(&t).await, 503, "jwks_unavailable");
    assert_eq!(h.calls.count(), 0);
    assert_eq!(h.store.calls(), 0);
    h.server.resume().await;
    tokio::time::sleep(Duration::from_millis(60)).await; // the test cooldown is 50 ms
    assert_answer(&h.send(&t).await, 200, "handled");
}

#[tokio::test]
async fn an_unknown_kid_during_an_outage_is_503_not_401() {
    let h = Harness::new().await;
    assert_answer(&h.send(token(&h.issuer)).await, 200, "handled");
    h.issuer.rotate_to(TestKey::secondary());
    h.server.set_behaviour(ServerBehaviour::Status(502));
    tokio::time::sleep(Duration::from_millis(60)).await;
    let rotated = token(&h.issuer);
    assert_answer(&h.send(&rotated).await, 503, "jwks_unavailable");
    // Within the cooldown, still "cannot verify", never "forged".
    assert_answer(&h.send(&rotated).await, 503, "jwks_unavailable");
    h.server.set_behaviour(ServerBehaviour::Serve);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_answer(&h.send(&rotated).await, 200, "handled");
}

#[tokio::test]
async fn cached_keys_keep_working_while_a_refresh_fails() {
    let issuer = TestIssuer::new();
    let server = issuer.serve().await;
    server.set_cache_control(Some("max-age=0"));
    let cfg = fast_jwks().min_ttl(Duration::from_millis(20));
    let webhooks = Webhooks::builder()
        .issuer(server.url())
        .jwks_config(cfg)
        .build()
        .unwrap();
    let send = |t: String| {
        let w = webhooks.clone();
        async move { w.handle(&http::HeaderMap::new(), t.as_bytes()).await }
    };
    assert_eq!(send(token(&issuer)).await.status(), 200);
    assert!(webhooks.jwks().last_error().is_none());
    server.stop();
    tokio::time::sleep(Duration::from_millis(30)).await; // past the 20 ms TTL
                                                         // Expired, the refresh fails, and the stale key still verifies.
    assert_answer(&send(token(&issuer)).await, 200, "ignored");
    assert_eq!(webhooks.jwks().fetch_count(), 2);
    let err = webhooks.jwks().last_error().expect("the refresh failed");
    assert!(matches!(*err, JwksError::Transport(_)), "{err}");
    assert_eq!(webhooks.jwks().cached_kids(), vec!["test-primary"]);
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_is_refused_after_the_ttl() {
    let issuer = TestIssuer::new();
    issuer.rotate_to(TestKey::secondary());
    let server = issuer.serve().await;
    server.set_cache_control(Some("public, max-age=0"));
    let cfg = fast_jwks().min_ttl(Duration::from_millis(50));
    let webhooks = Webhooks::builder()
        .issuer(server.url())
        .jwks_config(cfg)
        .build()
        .unwrap();
    let old = TestKey::primary().sign(&TestEvent::sample("user.created").into_claims());
    let send = |t: String| {
        let w = webhooks.clone();
        async move { w.handle(&http::HeaderMap::new(), t.as_bytes()).await }
    };
    assert_answer(&send(old.clone()).await, 200, "ignored");
    issuer.unpublish("test-primary");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_answer(&send(old).await, 401, "unknown_kid");
}

/// Delivers `n` tokens, `pause` apart, to a receiver whose keys come with `cache_control`;
/// returns how many fetches that took.
async fn fetches_for(
    n: usize,
    pause: Duration,
    cache_control: Option<&str>,
    tune: impl FnOnce(JwksConfig) -> JwksConfig,
) -> u64 {
    let issuer = TestIssuer::new();
    let server = issuer.serve().await;
    server.set_cache_control(cache_control);
    let cfg = tune(fast_jwks());
    let webhooks = Webhooks::builder()
        .issuer(server.url())
        .jwks_config(cfg)
        .build()
        .unwrap();
    for _ in 0..n {
        let t = token(&issuer);
        let resp = webhooks.handle(&http::HeaderMap::new(), t.as_bytes()).await;
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(pause).await;
    }
    server.fetch_count()
}

#[tokio::test]
async fn max_age_sets_the_ttl_within_the_clamps() {
    let pause = Duration::from_millis(20);
    // Without max-age the default TTL applies: 1 ms here, so every delivery refetches...
    let default_1ms = |c: JwksConfig| {
        c.default_ttl(Duration::from_millis(1))
            .min_ttl(Duration::from_millis(1))
    };
    assert_eq!(fetches_for(4, pause, None, default_1ms).await, 4);
    // ...max-age=3600 overrides it: one fetch for all (fails if max-age were ignored)...
    assert_eq!(
        fetches_for(4, pause, Some("public, max-age=3600"), default_1ms).await,
        1
    );
    // ...within max_ttl: clamped down to 1 ms, every delivery refetches again...
    let max_1ms = |c: JwksConfig| default_1ms(c).max_ttl(Duration::from_millis(1));
    assert_eq!(
        fetches_for(4, pause, Some("max-age=3600"), max_1ms).await,
        4
    );
    // ...and within min_ttl: max-age=0 (or no-store) raised to an hour, one fetch.
    let min_1h = |c: JwksConfig| {
        c.default_ttl(Duration::from_millis(1))
            .min_ttl(Duration::from_secs(3600))
    };
    assert_eq!(fetches_for(4, pause, Some("max-age=0"), min_1h).await, 1);
    assert_eq!(fetches_for(4, pause, Some("no-store"), min_1h).await, 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let issuer = TestIssuer::new();
    let good = issuer.serve().await;
    let redirecting = TestIssuer::new().serve().await;
    redirecting.set_behaviour(ServerBehaviour::Redirect(good.jwks_url()));
    let webhooks = Webhooks::builder()
        .issuer(redirecting.url())
        .build()
        .unwrap();
    let resp = webhooks
        .handle(&http::HeaderMap::new(), token(&issuer).as_bytes())
        .await;
    assert_answer(&resp, 503, "jwks_unavailable");
    assert_eq!(good.fetch_count(), 0);
}

#[tokio::test]
async fn the_jwks_json_path_and_an_explicit_url_are_the_ones_fetched() {
    let issuer = TestIssuer::new();
    let server = issuer.serve().await;
    let handled = |w: Webhooks| {
        let t = token(&issuer);
        async move {
            w.handle(&http::HeaderMap::new(), t.as_bytes())
                .await
                .status()
        }
    };
    let default = Webhooks::builder().issuer(server.url()).build().unwrap();
    assert_eq!(handled(default).await, 200);
    let json = Webhooks::builder()
        .issuer(format!("{}/", server.url()))
        .jwks_path(JwksPath::JwksJson)
        .build()
        .unwrap();
    assert_eq!(handled(json).await, 200);
    let explicit = Webhooks::builder()
        .jwks_url(format!("{}.json", server.jwks_url()))
        .build()
        .unwrap();
    assert_eq!(handled(explicit).await, 200);
    assert_eq!(
        server.paths(),
        [
            "/.well-known/jwks",
            "/.well-known/jwks.json",
            "/.well-known/jwks.json"
        ]
    );
    // An explicit URL is used as given: one the issuer does not serve is not "corrected".
    let elsewhere = Webhooks::builder()
        .jwks_url(format!("{}/keys", server.url()))
        .build()
        .unwrap();
    assert_eq!(handled(elsewhere).await, 503);
    assert_eq!(server.fetch_count(), 3, "only JWKS paths are counted");
}

#[tokio::test]
async fn a_static_key_source_needs_no_network() {
    let issuer = TestIssuer::new();
    let cache = JwksCache::new(
        Arc::new(StaticKeySource::new(issuer.jwks().to_string())),
        JwksConfig::default(),
    );
    assert!(cache.key("test-primary").await.is_ok());
    assert!(matches!(cache.key("nope").await, Err(KeyError::UnknownKid)));
    assert_eq!(cache.fetch_count(), 1);
}
