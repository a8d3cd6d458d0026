//! The store protocol (the test kit's suite, shared with every store) on the single server and
//! the cluster, and what it leaves in Redis: the keys of an event and its entity (one slot),
//! their values and TTLs, failure counts, parked states and records.

use std::time::Duration;

use kinde_core::store::{Claim, ClaimRequest, Completion, Entity, Fenced, IdempotencyStore};
use kinde_core::testing::check_store_protocol;
use kinde_core::EntityOrdering;
use redis::AsyncCommands;

use crate::redis_common::{event_id, get, started, LONG};
use crate::rig::{ago, rig, send, Raw, Redis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_protocol_on_a_single_server() {
    let Some(redis) = Redis::single().await else {
        return;
    };
    let s = redis.store(&crate::redis_common::unique_prefix());
    check_store_protocol(&s).await;
    // Its checks use fresh ids, so they can run at once on one store.
    let s = std::sync::Arc::new(s);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { check_store_protocol(&*s).await })
        })
        .collect();
    for r in runs {
        r.await.unwrap();
    }
}

#[tokio::test]
async fn the_store_protocol_on_a_cluster() {
    let Some(redis) = Redis::cluster().await else {
        return;
    };
    check_store_protocol(&redis.store(&crate::redis_common::unique_prefix())).await;
}

async fn pttl(raw: &mut Raw, key: &str) -> i64 {
    raw.pttl(key).await.unwrap()
}

async fn hget(raw: &mut Raw, key: &str, field: &str) -> Option<String> {
    raw.hget(key, field).await.unwrap()
}

/// An event of an entity: its key and the entity's are `{<entity>}`-tagged (one slot on a
/// cluster); the claim is in both, the completion leaves `d` and the applied timestamp, and
/// the entity outlives the done TTL's start.
async fn entity_layout(redis: &Redis) {
    let prefix = crate::redis_common::unique_prefix();
    let s = redis.store(&prefix);
    let mut raw = redis.raw().await;
    let id = event_id(kinde_core::testing::unique_event_id());
    let entity = Entity {
        key: "user:kp_1",
        timestamp: 1_700_000_000_123_456,
    };
    let request = ClaimRequest::new(&id, Duration::from_secs(30), LONG).entity(Some(entity));
    let token = started(s.claim(&request).await.unwrap());
    let (ek, nk) = (
        format!("{prefix}{{user:kp_1}} e:{id}"),
        format!("{prefix}{{user:kp_1}} entity"),
    );
    if let Redis::Cluster(c) = redis {
        assert_eq!(c.slot_of(&ek).await, c.slot_of(&nk).await);
    }
    assert_eq!(
        get(&mut raw, &ek).await,
        Some(format!("p:{}", token.as_str()))
    );
    assert!((10_000..=30_000).contains(&pttl(&mut raw, &ek).await));
    assert_eq!(
        hget(&mut raw, &nk, "it").await.as_deref(),
        Some(token.as_str())
    );
    assert_eq!(
        hget(&mut raw, &nk, "is").await.as_deref(),
        Some("1700000000123456")
    );
    assert_eq!(
        hget(&mut raw, &nk, "ie").await.as_deref(),
        Some(id.as_str())
    );
    // Without the entity the event is another key: nothing is in progress there.
    assert!(matches!(
        s.claim(&ClaimRequest::new(&id, LONG, LONG)).await.unwrap(),
        Claim::StartProcessing { .. }
    ));
    let done = Completion::new(Duration::from_secs(600)).entity(Some(entity), true);
    assert_eq!(
        s.complete(&id, &token, &done).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(get(&mut raw, &ek).await.as_deref(), Some("d"));
    assert!((300_000..=600_000).contains(&pttl(&mut raw, &ek).await));
    assert_eq!(
        hget(&mut raw, &nk, "a").await.as_deref(),
        Some("1700000000123456")
    );
    assert_eq!(hget(&mut raw, &nk, "x").await.as_deref(), Some("1"));
    assert_eq!(
        hget(&mut raw, &nk, "it").await,
        None,
        "the claim is cleared"
    );
    assert!((300_000..=600_000).contains(&pttl(&mut raw, &nk).await));
}

#[tokio::test]
async fn an_event_and_its_entity_share_one_slot_and_record_the_claim_and_what_was_applied() {
    if let Some(redis) = Redis::single().await {
        entity_layout(&redis).await;
    }
}

#[tokio::test]
async fn an_event_and_its_entity_share_one_slot_and_record_the_claim_and_what_was_applied_on_a_cluster(
) {
    if let Some(redis) = Redis::cluster().await {
        entity_layout(&redis).await;
    }
}

/// Failures are counted in the event's key for the done TTL; the n-th parks it (no TTL) with
/// its record in the parked set; a successful replay leaves `d` and drops the record.
async fn parking_layout(redis: &Redis, ordering: bool) {
    let r = rig(redis, move |b| {
        let b = b.park_after(2).done_ttl(Duration::from_secs(72 * 3600));
        if ordering {
            b.ordering(EntityOrdering::latest_wins())
        } else {
            b
        }
    })
    .await;
    let mut raw = redis.raw().await;
    r.handlers
        .fail
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let (token, id) = r.event("user.updated", "kp_1", ago(1));
    let key = if ordering {
        format!("{}{{user:kp_1}} e:{id}", r.prefix)
    } else {
        format!("{}{id}", r.prefix)
    };
    let (records, bytes) = (
        format!("{}{{parked}} records", r.prefix),
        format!("{}{{parked}} bytes", r.prefix),
    );
    assert_eq!(send(&r.a, &token).await, (500, "handler_failed"));
    let value = get(&mut raw, &key).await.unwrap();
    let parts: Vec<&str> = value.split(':').collect();
    assert_eq!((parts[0], parts[1], parts[3]), ("f", "1", "0"), "{value}");
    let ttl = pttl(&mut raw, &key).await;
    assert!(ttl > 71 * 3600 * 1000, "failures live the done TTL: {ttl}");

    assert_eq!(send(&r.b, &token).await, (200, "parked"));
    let value = get(&mut raw, &key).await.unwrap();
    assert!(value.starts_with("k:2:"), "{value}");
    assert_eq!(
        pttl(&mut raw, &key).await,
        -1,
        "parked events do not expire"
    );
    let record = hget(&mut raw, &records, &id).await.unwrap();
    assert!(record.starts_with("2:"), "{record}");
    let size = r.a.parked().await.unwrap()[0].size();
    assert_eq!(get(&mut raw, &bytes).await, Some(size.to_string()));

    assert!(matches!(
        r.b.replay(&event_id(&id)).await.unwrap(),
        kinde_core::Outcome::Handled
    ));
    assert_eq!(get(&mut raw, &key).await.as_deref(), Some("d"));
    assert_eq!(hget(&mut raw, &records, &id).await, None);
    assert_eq!(get(&mut raw, &bytes).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn failures_are_counted_in_the_events_key_and_a_parked_record_lives_in_the_parked_set() {
    if let Some(redis) = Redis::single().await {
        parking_layout(&redis, false).await;
        parking_layout(&redis, true).await;
    }
}

#[tokio::test]
async fn failures_are_counted_in_the_events_key_and_a_parked_record_lives_in_the_parked_set_on_a_cluster(
) {
    if let Some(redis) = Redis::cluster().await {
        parking_layout(&redis, false).await;
        parking_layout(&redis, true).await;
    }
}

/// A receiver that claimed an event (and its entity) and died: once its claim's deadline has
/// passed, the next delivery takes over, even where the key itself lives on (it holds the
/// event's failure count, which survives: here the takeover's failure is the second, and
/// parks); the dead claim's late completion is fenced off.
async fn an_expired_claim_is_taken_over(redis: &Redis, ordering: bool) {
    let r = rig(redis, move |b| {
        let b = b.park_after(2);
        if ordering {
            b.ordering(EntityOrdering::latest_wins())
        } else {
            b
        }
    })
    .await;
    let fail = |n| {
        r.handlers
            .fail
            .store(n, std::sync::atomic::Ordering::SeqCst)
    };
    let at = ago(1);
    let (token, id) = r.event("user.updated", "kp_1", at);
    fail(1);
    assert_eq!(send(&r.a, &token).await, (500, "handler_failed"));

    let dead = redis.store(&r.prefix);
    let id = event_id(id);
    let entity = ordering.then_some(Entity {
        key: "user:kp_1",
        timestamp: crate::rig::micros(at) as i64,
    });
    let request = ClaimRequest::new(&id, Duration::from_millis(300), LONG).entity(entity);
    let dead_token = started(dead.claim(&request).await.unwrap());
    fail(1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let a = send(&r.b, &token).await;
        if a != (409, "in_progress") {
            break a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead claim never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer, (200, "parked"), "the failure count survived");
    let late = Completion::new(LONG).entity(entity, false);
    assert_eq!(
        dead.complete(&id, &dead_token, &late).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(send(&r.a, &token).await, (200, "parked"));
    assert_eq!(r.a.parked().await.unwrap()[0].attempts, 2);
}

#[tokio::test]
async fn an_expired_claim_is_taken_over_and_the_failure_count_survives() {
    if let Some(redis) = Redis::single().await {
        an_expired_claim_is_taken_over(&redis, false).await;
        an_expired_claim_is_taken_over(&redis, true).await;
    }
}

#[tokio::test]
async fn an_expired_claim_is_taken_over_and_the_failure_count_survives_on_a_cluster() {
    if let Some(redis) = Redis::cluster().await {
        an_expired_claim_is_taken_over(&redis, false).await;
        an_expired_claim_is_taken_over(&redis, true).await;
    }
}
