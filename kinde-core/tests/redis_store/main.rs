//! `RedisStore` against real Redis: the single server, the clusters (3 masters with a replica
//! each) and the TLS servers started by `scripts/redis-up.sh`. Run with
//!
//! ```text
//! source scripts/redis-up.sh && cargo test -p kinde-core --features redis --test redis_store; \
//!     source scripts/redis-down.sh
//! ```
//!
//! Without the servers, the tests that need them skip (or fail with `KINDE_REQUIRE_REDIS=1`);
//! the ones about an unreachable Redis or a refused configuration always run.

#![cfg(feature = "redis")]

#[path = "../redis_common/mod.rs"]
mod redis_common;

mod cluster;
mod failover;
mod migration;
mod ordering;
mod parking;
mod protocol;
mod receiver;
mod rig;
mod round_trips;
mod semantics;
mod tls;
mod unreachable;

use std::collections::HashMap;
use std::time::Duration;

use kinde_core::store::RedisStore;
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::Webhooks;
use redis_common::{answer, deliver, Counter};

/// Delivers `token` until the answer is neither 409 nor 503 (as Kinde retries), at most 500
/// times with 20 ms between.
async fn deliver_until_settled(webhooks: &Webhooks, token: &str) -> (u16, &'static str) {
    for _ in 0..500 {
        let a = answer(&deliver(webhooks, token).await);
        if a.0 != 409 && a.0 != 503 {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still 409/503 after 500 attempts");
}

/// Whether a 503 may be a first answer: never on a single server; on a cluster, a node that
/// seemed unresponsive for `cluster-node-timeout` (1 s, under load) can be failed over.
#[derive(Clone, Copy, PartialEq)]
enum Unavailable {
    Never,
    Retried,
}

/// `events` events, each delivered 5 times concurrently, spread over two receivers that each
/// have their own store on the same Redis: exactly one handler run and one `handled` per event.
async fn exactly_once_across_receivers(
    events: usize,
    unavailable: Unavailable,
    make_store: impl Fn() -> RedisStore,
) {
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
    let signed: Vec<(String, String)> = (0..events)
        .map(|_| {
            let ev = TestEvent::sample("user.created");
            (ev.id().to_owned(), issuer.sign(&ev.into_claims()))
        })
        .collect();
    let mut deliveries = Vec::new();
    for (i, (id, token)) in signed.iter().enumerate() {
        for copy in 0..COPIES {
            let webhooks = receivers[(i + copy) % 2].clone();
            let (id, token) = (id.clone(), token.clone());
            deliveries.push(tokio::spawn(async move {
                let first = answer(&deliver(&webhooks, &token).await);
                let settled = if matches!(first.0, 409 | 503) {
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
        let allowed = matches!(first, (200, "handled" | "duplicate") | (409, "in_progress"))
            || (unavailable == Unavailable::Retried && first == (503, "store_unavailable"));
        assert!(allowed, "{first:?}");
        for a in [Some(first), settled].into_iter().flatten() {
            if a == (200, "handled") {
                *handled.entry(id.clone()).or_default() += 1;
            }
        }
        if let Some(settled) = settled {
            assert!(
                matches!(settled, (200, "duplicate" | "handled")),
                "a retry: {settled:?}"
            );
        }
    }
    eprintln!(
        "first answers of {} deliveries: {firsts:?}",
        events * COPIES
    );
    assert_eq!(counter.total(), events);
    assert_eq!(handled.len(), events);
    for (id, _) in &signed {
        assert_eq!(counter.runs(id), 1, "{id}");
        assert_eq!(handled[id], 1, "{id}");
    }
}
