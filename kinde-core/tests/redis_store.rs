//! `RedisStore` against real Redis: the single server and the 3-master cluster started by
//! `scripts/redis-up.sh`. Run with
//!
//! ```text
//! source scripts/redis-up.sh && cargo test -p kinde-core --features redis --test redis_store; \
//!     source scripts/redis-down.sh
//! ```
//!
//! Without the servers, the tests that need them skip (or fail with `KINDE_REQUIRE_REDIS=1`);
//! the ones about an unreachable Redis always run.

#![cfg(feature = "redis")]

mod redis_common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinde_core::store::{
    Claim, ClaimToken, FailMode, Fenced, IdempotencyStore, RedisStore, RedisStoreConfig, StoreError,
};
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::Webhooks;
use redis::AsyncCommands;
use redis_common::{answer, deliver, Counter};

const LONG: Duration = Duration::from_secs(3600);

fn started(c: Claim) -> ClaimToken {
    match c {
        Claim::StartProcessing(t) => t,
        other => panic!("expected StartProcessing, got {other:?}"),
    }
}

fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::new(RedisStoreConfig::new(url).key_prefix(prefix)).unwrap()
}

async fn get(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    raw.get(key).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Store semantics on the single server.

#[tokio::test]
async fn claim_complete_release_and_fencing() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let s = store(&redis.url, &prefix);
    let mut raw = redis_common::raw(&redis.url).await;
    let key = |id: &str| format!("{prefix}{id}");

    // Claim: the key holds `p:<token>` for the processing TTL.
    let t = started(s.claim("e1", Duration::from_secs(30)).await.unwrap());
    assert_eq!(
        get(&mut raw, &key("e1")).await,
        Some(format!("p:{}", t.as_str()))
    );
    let pttl: i64 = raw.pttl(key("e1")).await.unwrap();
    assert!((25_000..=30_000).contains(&pttl), "pttl {pttl}");
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::InProgress);

    // Someone else's token changes nothing.
    let stranger = ClaimToken::random();
    assert_eq!(
        s.complete("e1", &stranger, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        s.release("e1", &stranger).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        get(&mut raw, &key("e1")).await,
        Some(format!("p:{}", t.as_str()))
    );

    // Complete: `d` for the done TTL; then duplicates are AlreadyHandled.
    assert_eq!(
        s.complete("e1", &t, Duration::from_secs(600))
            .await
            .unwrap(),
        Fenced::Applied
    );
    assert_eq!(get(&mut raw, &key("e1")).await.as_deref(), Some("d"));
    let pttl: i64 = raw.pttl(key("e1")).await.unwrap();
    assert!((590_000..=600_000).contains(&pttl), "pttl {pttl}");
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::AlreadyHandled);
    // The finished claim's token no longer controls anything.
    assert_eq!(s.release("e1", &t).await.unwrap(), Fenced::Superseded);
    assert_eq!(
        s.complete("e1", &t, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(get(&mut raw, &key("e1")).await.as_deref(), Some("d"));

    // Release: the key is gone and the next claim starts afresh with a new token.
    let t1 = started(s.claim("e2", LONG).await.unwrap());
    assert_eq!(s.release("e2", &t1).await.unwrap(), Fenced::Applied);
    assert_eq!(get(&mut raw, &key("e2")).await, None);
    let t2 = started(s.claim("e2", LONG).await.unwrap());
    assert_ne!(t1, t2);
    assert_eq!(s.release("e2", &t1).await.unwrap(), Fenced::Superseded);
    assert_eq!(
        s.complete("e2", &t1, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(s.claim("e2", LONG).await.unwrap(), Claim::InProgress);

    // Handled events are forgotten after the done TTL.
    let t3 = started(s.claim("e3", LONG).await.unwrap());
    s.complete("e3", &t3, Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    started(s.claim("e3", LONG).await.unwrap());
}

#[tokio::test]
async fn an_expired_claim_is_taken_over_and_the_old_token_is_fenced_off() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let s = store(&redis.url, &prefix);
    let mut raw = redis_common::raw(&redis.url).await;
    let key = format!("{prefix}e1");

    let dead = started(s.claim("e1", Duration::from_millis(100)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = started(s.claim("e1", LONG).await.unwrap());
    let live_value = Some(format!("p:{}", live.as_str()));
    // The late holder can neither complete nor release the new claim.
    assert_eq!(
        s.complete("e1", &dead, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(s.release("e1", &dead).await.unwrap(), Fenced::Superseded);
    assert_eq!(get(&mut raw, &key).await, live_value);
    assert_eq!(
        s.complete("e1", &live, LONG).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::AlreadyHandled);
}

#[tokio::test]
async fn keys_are_the_prefix_followed_by_the_event_id() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let mut raw = redis_common::raw(&redis.url).await;
    let id = kinde_core::testing::unique_event_id();

    // The default prefix.
    let s = RedisStore::open(&redis.url).unwrap();
    assert_eq!(s.key_prefix(), "kinde:webhook:");
    assert!(!s.is_cluster());
    let t = started(s.claim(&id, LONG).await.unwrap());
    assert_eq!(
        get(&mut raw, &format!("kinde:webhook:{id}")).await,
        Some(format!("p:{}", t.as_str()))
    );
    assert_eq!(s.release(&id, &t).await.unwrap(), Fenced::Applied);

    // A custom one; stores with different prefixes do not see each other's events.
    let prefix = redis_common::unique_prefix();
    let a = store(&redis.url, &prefix);
    let b = store(&redis.url, &redis_common::unique_prefix());
    let t = started(a.claim(&id, LONG).await.unwrap());
    a.complete(&id, &t, LONG).await.unwrap();
    let exists: bool = raw.exists(format!("{prefix}{id}")).await.unwrap();
    assert!(exists);
    assert_eq!(a.claim(&id, LONG).await.unwrap(), Claim::AlreadyHandled);
    started(b.claim(&id, LONG).await.unwrap());
    // Only this event's keys exist under the prefix.
    let keys: Vec<String> = raw.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(keys, vec![format!("{prefix}{id}")]);
}

#[tokio::test]
async fn a_value_it_did_not_write_is_an_error_not_a_guess() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let s = store(&redis.url, &prefix);
    let mut raw = redis_common::raw(&redis.url).await;
    let _: () = raw
        .set(format!("{prefix}e1"), "something else")
        .await
        .unwrap();
    assert!(matches!(
        s.claim("e1", LONG).await,
        Err(StoreError::Unavailable(_))
    ));
    let _: () = raw.set(format!("{prefix}e1"), "d").await.unwrap();
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::AlreadyHandled);
}

// ---------------------------------------------------------------------------------------------
// No Redis needed: invalid ids, an unreachable or mute Redis, failing open.

#[tokio::test]
async fn invalid_event_ids_are_rejected_before_reaching_redis() {
    // A closed port: were the id sent, the answer would be Unavailable.
    let s = RedisStore::open(&redis_common::closed_port_url()).unwrap();
    let t = ClaimToken::random();
    for bad in [
        String::new(),
        "x".repeat(257),
        "a b".into(),
        "tab\there".into(),
        "new\nline".into(),
        "caf\u{e9}".into(),
        "nul\0".into(),
    ] {
        assert!(
            matches!(s.claim(&bad, LONG).await, Err(StoreError::InvalidKey)),
            "{bad:?}"
        );
        assert!(matches!(
            s.complete(&bad, &t, LONG).await,
            Err(StoreError::InvalidKey)
        ));
        assert!(matches!(
            s.release(&bad, &t).await,
            Err(StoreError::InvalidKey)
        ));
    }
    // The longest acceptable id reaches Redis (and finds it down).
    assert!(matches!(
        s.claim(&"x".repeat(256), LONG).await,
        Err(StoreError::Unavailable(_) | StoreError::Timeout(_))
    ));
}

#[test]
fn bad_configurations_are_refused_without_connecting() {
    assert!(RedisStore::new(RedisStoreConfig::from_urls(Vec::<String>::new())).is_err());
    assert!(RedisStore::open("not a url").is_err());
    assert!(RedisStore::new(RedisStoreConfig::cluster(["redis://127.0.0.1:1", "nope"])).is_err());
    assert!(RedisStore::new(
        RedisStoreConfig::new("redis://127.0.0.1:1").command_timeout(Duration::ZERO)
    )
    .is_err());
    // Built outside any runtime, for a Redis that is not there.
    let s = RedisStore::new(RedisStoreConfig::cluster(["redis://127.0.0.1:1"])).unwrap();
    assert!(s.is_cluster());
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
async fn an_unreachable_or_mute_redis_fails_fast_with_a_store_error() {
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
            let t0 = Instant::now();
            let r = s.claim("e1", LONG).await;
            assert!(
                matches!(r, Err(StoreError::Unavailable(_) | StoreError::Timeout(_))),
                "{url}: {r:?}"
            );
            assert!(
                t0.elapsed() < bound * 2 + Duration::from_millis(700),
                "{url}: {:?}",
                t0.elapsed()
            );
        }
        let t0 = Instant::now();
        assert!(s.ping().await.is_err());
        assert!(t0.elapsed() < bound * 2 + Duration::from_millis(700));
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
        let t0 = Instant::now();
        let resp = deliver(&webhooks, &token).await;
        assert_eq!(answer(&resp), (503, "store_unavailable"));
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }
    assert_eq!(counter.total(), 0);
}

#[tokio::test]
async fn failing_open_handles_without_deduplication_while_redis_is_down() {
    let s = RedisStore::new(
        RedisStoreConfig::new(redis_common::closed_port_url()).fail_mode(FailMode::Open),
    )
    .unwrap();
    let t = started(s.claim("e1", LONG).await.unwrap());
    // Nothing was recorded: its token settles nothing, and says so without an error.
    assert_eq!(s.complete("e1", &t, LONG).await.unwrap(), Fenced::Applied);
    assert_eq!(s.release("e1", &t).await.unwrap(), Fenced::Applied);
    // Invalid ids are still refused.
    assert!(matches!(
        s.claim("a b", LONG).await,
        Err(StoreError::InvalidKey)
    ));

    // Through a receiver: every delivery runs the handler (the documented price).
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    let webhooks = redis_common::receiver(jwks.url(), s, &counter, |b| b);
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());
    for _ in 0..2 {
        assert_eq!(answer(&deliver(&webhooks, &token).await), (200, "handled"));
    }
    assert_eq!(counter.runs(&id), 2);
}

#[tokio::test]
async fn failing_open_is_invisible_while_redis_is_up() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let s = RedisStore::new(
        RedisStoreConfig::new(&redis.url)
            .key_prefix(redis_common::unique_prefix())
            .fail_mode(FailMode::Open),
    )
    .unwrap();
    let t = started(s.claim("e1", LONG).await.unwrap());
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::InProgress);
    assert_eq!(s.complete("e1", &t, LONG).await.unwrap(), Fenced::Applied);
    assert_eq!(s.claim("e1", LONG).await.unwrap(), Claim::AlreadyHandled);
}

// ---------------------------------------------------------------------------------------------
// The receiver pipeline over Redis.

/// Delivers `token` until the answer is not 409 (as Kinde retries), at most ~10 s.
async fn deliver_until_settled(webhooks: &Webhooks, token: &str) -> (u16, &'static str) {
    for _ in 0..500 {
        let a = answer(&deliver(webhooks, token).await);
        if a.0 != 409 {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still 409 after 500 attempts");
}

/// 200 events, each delivered 5 times concurrently, spread over two receivers that each have
/// their own store on the same Redis: exactly 200 handler runs, one per event.
async fn exactly_once_across_receivers(make_store: impl Fn() -> RedisStore) {
    const EVENTS: usize = 200;
    const COPIES: usize = 5;
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Counter::with_delay(Duration::from_millis(5));
    // Connected before the burst: on a loaded 2-core machine, a first connection made under
    // 1000 concurrent deliveries can exceed the connect timeout (a 503, which Kinde would retry).
    let (a, b) = (make_store(), make_store());
    a.ping().await.unwrap();
    b.ping().await.unwrap();
    let receivers = [
        redis_common::receiver(jwks.url(), a, &counter, |b| b),
        redis_common::receiver(jwks.url(), b, &counter, |b| b),
    ];
    let events: Vec<(String, String)> = (0..EVENTS)
        .map(|_| {
            let ev = TestEvent::sample("user.created");
            (ev.id().to_owned(), issuer.sign(&ev.into_claims()))
        })
        .collect();
    let mut deliveries = Vec::new();
    for (i, (id, token)) in events.iter().enumerate() {
        for copy in 0..COPIES {
            let webhooks = receivers[(i + copy) % 2].clone();
            let (id, token) = (id.clone(), token.clone());
            deliveries.push(tokio::spawn(async move {
                let first = answer(&deliver(&webhooks, &token).await);
                let settled = if first.0 == 409 {
                    Some(deliver_until_settled(&webhooks, &token).await)
                } else {
                    None
                };
                (id, first, settled)
            }));
        }
    }
    let mut firsts: HashMap<(u16, &str), usize> = HashMap::new();
    let mut handled: HashMap<String, usize> = HashMap::new();
    for d in deliveries {
        let (id, first, settled) = d.await.unwrap();
        *firsts.entry(first).or_default() += 1;
        assert!(
            matches!(first, (200, "handled" | "duplicate") | (409, "in_progress")),
            "{first:?}"
        );
        if first == (200, "handled") {
            *handled.entry(id).or_default() += 1;
        }
        if let Some(settled) = settled {
            assert_eq!(settled, (200, "duplicate"), "a 409 retried");
        }
    }
    eprintln!(
        "first answers of {} deliveries: {firsts:?}",
        EVENTS * COPIES
    );
    assert_eq!(counter.total(), EVENTS);
    assert_eq!(handled.len(), EVENTS);
    for (id, _) in &events {
        assert_eq!(counter.runs(id), 1, "{id}");
        assert_eq!(handled[id], 1, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_two_receivers_sharing_redis() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    exactly_once_across_receivers(|| {
        RedisStore::new(
            RedisStoreConfig::new(&redis.url)
                .key_prefix(&prefix)
                .command_timeout(Duration::from_secs(5))
                .connect_timeout(Duration::from_secs(5)),
        )
        .unwrap()
    })
    .await;
    let mut raw = redis_common::raw(&redis.url).await;
    let keys: Vec<String> = raw.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(keys.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_two_receivers_on_a_cluster() {
    let Some(urls) = redis_common::cluster() else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    exactly_once_across_receivers(|| {
        let s = RedisStore::new(
            RedisStoreConfig::cluster(urls.clone())
                .key_prefix(&prefix)
                .command_timeout(Duration::from_secs(5))
                .connect_timeout(Duration::from_secs(5)),
        )
        .unwrap();
        assert!(s.is_cluster());
        s
    })
    .await;
    // The 200 keys are spread over the three masters' slots.
    let mut per_node = Vec::new();
    for url in &urls {
        let mut node = redis_common::raw(url).await;
        let keys: Vec<String> = node.keys(format!("{prefix}*")).await.unwrap();
        per_node.push(keys.len());
    }
    eprintln!("keys per cluster node: {per_node:?}");
    assert_eq!(per_node.iter().sum::<usize>(), 200);
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
}

#[tokio::test]
async fn cluster_store_semantics() {
    let Some(urls) = redis_common::cluster() else {
        return;
    };
    let s =
        RedisStore::new(RedisStoreConfig::cluster(urls).key_prefix(redis_common::unique_prefix()))
            .unwrap();
    s.ping().await.unwrap();
    // Ids in many slots: claim, fence, complete, release all work wherever the key lives.
    for i in 0..30 {
        let id = format!("evt_{i}");
        let t = started(s.claim(&id, LONG).await.unwrap());
        assert_eq!(s.claim(&id, LONG).await.unwrap(), Claim::InProgress);
        assert_eq!(
            s.complete(&id, &ClaimToken::random(), LONG).await.unwrap(),
            Fenced::Superseded
        );
        if i % 2 == 0 {
            assert_eq!(s.complete(&id, &t, LONG).await.unwrap(), Fenced::Applied);
            assert_eq!(s.claim(&id, LONG).await.unwrap(), Claim::AlreadyHandled);
        } else {
            assert_eq!(s.release(&id, &t).await.unwrap(), Fenced::Applied);
            started(s.claim(&id, LONG).await.unwrap());
        }
    }
}

#[tokio::test]
async fn a_failed_handler_releases_the_claim_and_the_retry_runs_it() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    counter
        .fail_next
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let webhooks = redis_common::receiver(jwks.url(), store(&redis.url, &prefix), &counter, |b| b);
    let mut raw = redis_common::raw(&redis.url).await;
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());

    assert_eq!(
        answer(&deliver(&webhooks, &token).await),
        (500, "handler_failed")
    );
    assert_eq!(
        get(&mut raw, &format!("{prefix}{id}")).await,
        None,
        "released"
    );
    assert_eq!(answer(&deliver(&webhooks, &token).await), (200, "handled"));
    assert_eq!(
        get(&mut raw, &format!("{prefix}{id}")).await.as_deref(),
        Some("d")
    );
    assert_eq!(
        answer(&deliver(&webhooks, &token).await),
        (200, "duplicate")
    );
    assert_eq!(counter.runs(&id), 2);
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_receiver_expires_and_the_next_delivery_is_handled() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    let webhooks = redis_common::receiver(jwks.url(), store(&redis.url, &prefix), &counter, |b| b);
    let mut raw = redis_common::raw(&redis.url).await;
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());

    // Keys fetched, so the first delivery below is quick.
    let other = issuer.sign(&TestEvent::sample("user.created").into_claims());
    assert_eq!(answer(&deliver(&webhooks, &other).await), (200, "handled"));

    // A receiver claimed the event with a 1 s processing TTL, then died mid-handler.
    let dead = store(&redis.url, &prefix);
    let claimed_at = tokio::time::Instant::now();
    let dead_token = started(dead.claim(&id, Duration::from_secs(1)).await.unwrap());
    assert_eq!(
        answer(&deliver(&webhooks, &token).await),
        (409, "in_progress")
    );
    assert_eq!(counter.runs(&id), 0);

    tokio::time::sleep_until(claimed_at + Duration::from_millis(1100)).await;
    assert_eq!(answer(&deliver(&webhooks, &token).await), (200, "handled"));
    assert_eq!(counter.runs(&id), 1);

    // The dead receiver's late completion (or release) is fenced off and changes nothing.
    assert_eq!(
        dead.complete(&id, &dead_token, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        dead.release(&id, &dead_token).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        get(&mut raw, &format!("{prefix}{id}")).await.as_deref(),
        Some("d")
    );
    assert_eq!(
        answer(&deliver(&webhooks, &token).await),
        (200, "duplicate")
    );
    assert_eq!(counter.runs(&id), 1);
}

/// Redis stops during a stream of deliveries: those answer 503 and run nothing; once it is back
/// (same port, same data), the retried deliveries are each handled exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_stream_then_back_loses_nothing_and_doubles_nothing() {
    let Some(mut redis) = redis_common::restartable().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let fast = |url: &str| {
        RedisStore::new(
            RedisStoreConfig::new(url)
                .key_prefix(&prefix)
                .command_timeout(Duration::from_millis(500))
                .connect_timeout(Duration::from_millis(500)),
        )
        .unwrap()
    };
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    // A short processing TTL: a claim whose reply was lost in the shutdown blocks retries (409)
    // only this long.
    let tune = |b: kinde_core::WebhooksBuilder| {
        b.processing_ttl(Duration::from_secs(2))
            .handler_timeout(Duration::from_secs(1))
    };
    let webhooks = redis_common::receiver(jwks.url(), fast(&redis.url), &counter, tune);

    let events: Vec<(String, String)> = (0..100)
        .map(|_| {
            let ev = TestEvent::sample("user.created");
            (ev.id().to_owned(), issuer.sign(&ev.into_claims()))
        })
        .collect();

    // The stream: one delivery every 20 ms, in the background.
    let stream = {
        let (webhooks, counter, events) = (webhooks.clone(), counter.clone(), events.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for (id, token) in &events {
                let a = answer(&deliver(&webhooks, token).await);
                if a.0 == 503 {
                    // Refused while Redis is down: the handler did not run.
                    assert_eq!(counter.runs(id), 0, "{id} ran but was answered 503");
                }
                answers.push(a);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    };
    // Stop Redis once the stream is under way, and start it again a while later.
    let t0 = Instant::now();
    while counter.total() < 10 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the stream does not get handled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    redis.stop().await;
    // A receiver started now, while Redis is down, answers 503 promptly too.
    let late_counter = Arc::new(Counter::default());
    let late = redis_common::receiver(jwks.url(), fast(&redis.url), &late_counter, tune);
    let probe = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let t0 = Instant::now();
    assert_eq!(
        answer(&deliver(&late, &probe).await),
        (503, "store_unavailable")
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.start().await;

    let answers = stream.await.unwrap();
    let refused = answers.iter().filter(|a| a.0 == 503).count();
    eprintln!(
        "stream of {}: {} handled, {refused} refused with 503 while Redis was down",
        answers.len(),
        answers.iter().filter(|a| **a == (200, "handled")).count()
    );
    assert!(refused > 0, "no delivery met the outage: {answers:?}");
    for a in &answers {
        assert!(
            matches!(a, (200, "handled") | (503, "store_unavailable")),
            "{a:?}"
        );
    }

    // Kinde retries what was not acknowledged (bounded, with a pause between rounds).
    let mut pending: Vec<usize> = (0..events.len()).filter(|&i| answers[i].0 != 200).collect();
    for _ in 0..100 {
        if pending.is_empty() {
            break;
        }
        let mut still = Vec::new();
        for i in pending {
            let a = answer(&deliver(&webhooks, &events[i].1).await);
            assert!(
                matches!(
                    a,
                    (200, _) | (503, "store_unavailable") | (409, "in_progress")
                ),
                "{a:?}"
            );
            if a.0 != 200 {
                still.push(i);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pending.is_empty(),
        "{} deliveries never settled",
        pending.len()
    );

    // Every event handled exactly once.
    for (id, _) in &events {
        assert_eq!(counter.runs(id), 1, "{id}");
    }
    assert_eq!(counter.total(), events.len());
    // The restarted server kept its data: events completed before the outage (the stream is
    // sequential, so the first 9 had completed when the 10th ran) are still known.
    let mut raw = redis_common::raw(&redis.url).await;
    for (id, token) in &events[..9] {
        assert_eq!(
            get(&mut raw, &format!("{prefix}{id}")).await.as_deref(),
            Some("d")
        );
        assert_eq!(answer(&deliver(&webhooks, token).await), (200, "duplicate"));
    }
    // The receiver built during the outage works now that Redis is back.
    assert_eq!(answer(&deliver(&late, &probe).await), (200, "handled"));
    assert_eq!(late_counter.total(), 1);
}
