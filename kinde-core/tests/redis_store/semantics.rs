//! Store semantics on the single server: the key's values and TTLs, fencing, prefixes.

use std::time::Duration;

use kinde_core::store::{
    Claim, ClaimToken, FailMode, Fenced, RedisStore, RedisStoreConfig, StoreError,
};
use redis::AsyncCommands;

use crate::redis_common::{self, get, started, store, LONG};

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
    let t = started(
        redis_common::claim(&s, "e1", Duration::from_secs(30))
            .await
            .unwrap(),
    );
    assert_eq!(
        get(&mut raw, &key("e1")).await,
        Some(format!("p:{}", t.as_str()))
    );
    // (Lower bounds 20 s and 300 s short of the TTL: no loaded machine takes that long between
    // the command and the check.)
    let pttl: i64 = raw.pttl(key("e1")).await.unwrap();
    assert!((10_000..=30_000).contains(&pttl), "pttl {pttl}");
    assert_eq!(
        redis_common::claim(&s, "e1", LONG).await.unwrap(),
        Claim::InProgress
    );

    // Someone else's token changes nothing.
    let stranger = ClaimToken::random();
    assert_eq!(
        redis_common::complete(&s, "e1", &stranger, LONG)
            .await
            .unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        redis_common::release(&s, "e1", &stranger).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        get(&mut raw, &key("e1")).await,
        Some(format!("p:{}", t.as_str()))
    );

    // Complete: `d` for the done TTL; then duplicates are AlreadyHandled.
    assert_eq!(
        redis_common::complete(&s, "e1", &t, Duration::from_secs(600))
            .await
            .unwrap(),
        Fenced::Applied
    );
    assert_eq!(get(&mut raw, &key("e1")).await.as_deref(), Some("d"));
    let pttl: i64 = raw.pttl(key("e1")).await.unwrap();
    assert!((300_000..=600_000).contains(&pttl), "pttl {pttl}");
    assert_eq!(
        redis_common::claim(&s, "e1", LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
    // The finished claim's token no longer controls anything.
    assert_eq!(
        redis_common::release(&s, "e1", &t).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        redis_common::complete(&s, "e1", &t, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(get(&mut raw, &key("e1")).await.as_deref(), Some("d"));

    // Release: the key is gone and the next claim starts afresh with a new token.
    let t1 = started(redis_common::claim(&s, "e2", LONG).await.unwrap());
    assert_eq!(
        redis_common::release(&s, "e2", &t1).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(get(&mut raw, &key("e2")).await, None);
    let t2 = started(redis_common::claim(&s, "e2", LONG).await.unwrap());
    assert_ne!(t1, t2);
    assert_eq!(
        redis_common::release(&s, "e2", &t1).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        redis_common::complete(&s, "e2", &t1, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        redis_common::claim(&s, "e2", LONG).await.unwrap(),
        Claim::InProgress
    );

    // Handled events are forgotten after the done TTL (the wait starts once Redis has set it).
    let t3 = started(redis_common::claim(&s, "e3", LONG).await.unwrap());
    redis_common::complete(&s, "e3", &t3, Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    started(redis_common::claim(&s, "e3", LONG).await.unwrap());
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

    // The wait starts once Redis has set the claim's TTL: it has expired by then.
    let dead = started(
        redis_common::claim(&s, "e1", Duration::from_millis(100))
            .await
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = started(redis_common::claim(&s, "e1", LONG).await.unwrap());
    let live_value = Some(format!("p:{}", live.as_str()));
    // The late holder can neither complete nor release the new claim.
    assert_eq!(
        redis_common::complete(&s, "e1", &dead, LONG).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(
        redis_common::release(&s, "e1", &dead).await.unwrap(),
        Fenced::Superseded
    );
    assert_eq!(get(&mut raw, &key).await, live_value);
    assert_eq!(
        redis_common::complete(&s, "e1", &live, LONG).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(
        redis_common::claim(&s, "e1", LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
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
    assert!(!s.is_tls());
    let t = started(redis_common::claim(&s, &id, LONG).await.unwrap());
    assert_eq!(
        get(&mut raw, &format!("kinde:webhook:{id}")).await,
        Some(format!("p:{}", t.as_str()))
    );
    assert_eq!(
        redis_common::release(&s, &id, &t).await.unwrap(),
        Fenced::Applied
    );

    // A custom one; stores with different prefixes do not see each other's events.
    let prefix = redis_common::unique_prefix();
    let a = store(&redis.url, &prefix);
    let b = store(&redis.url, &redis_common::unique_prefix());
    let t = started(redis_common::claim(&a, &id, LONG).await.unwrap());
    redis_common::complete(&a, &id, &t, LONG).await.unwrap();
    let exists: bool = raw.exists(format!("{prefix}{id}")).await.unwrap();
    assert!(exists);
    assert_eq!(
        redis_common::claim(&a, &id, LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
    started(redis_common::claim(&b, &id, LONG).await.unwrap());
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
        redis_common::claim(&s, "e1", LONG).await,
        Err(StoreError::Unavailable(_))
    ));
    let _: () = raw.set(format!("{prefix}e1"), "d").await.unwrap();
    assert_eq!(
        redis_common::claim(&s, "e1", LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
}

#[tokio::test]
async fn failing_open_is_invisible_while_redis_is_up() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let s = RedisStore::new(
        RedisStoreConfig::new(&redis.url)
            .key_prefix(redis_common::unique_prefix())
            .command_timeout(redis_common::GENEROUS)
            .fail_mode(FailMode::Open),
    )
    .unwrap();
    let t = started(redis_common::claim(&s, "e1", LONG).await.unwrap());
    assert_eq!(
        redis_common::claim(&s, "e1", LONG).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        redis_common::complete(&s, "e1", &t, LONG).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(
        redis_common::claim(&s, "e1", LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
}
