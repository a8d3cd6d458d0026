//! The store on the plain cluster (3 masters with a replica each), shared with the other tests
//! that do not change it.

use kinde_core::store::{Claim, ClaimToken, Fenced, RedisStore, RedisStoreConfig};
use redis::AsyncCommands;

use crate::redis_common::{self, cluster, started, GENEROUS, LONG};
use crate::{exactly_once_across_receivers, Unavailable};

/// A store on the cluster with these URLs and key prefix, with generous bounds.
pub fn cluster_store(config: RedisStoreConfig, prefix: &str) -> RedisStore {
    let s = RedisStore::new(
        config
            .key_prefix(prefix)
            .command_timeout(GENEROUS)
            .connect_timeout(GENEROUS),
    )
    .unwrap();
    assert!(s.is_cluster());
    s
}

/// Claim, fence, complete and release, for ids in many slots.
pub async fn store_semantics(s: &RedisStore) {
    s.ping().await.unwrap();
    for i in 0..30 {
        let id = format!("evt_{i}");
        let t = started(redis_common::claim(s, &id, LONG).await.unwrap());
        assert_eq!(
            redis_common::claim(s, &id, LONG).await.unwrap(),
            Claim::InProgress
        );
        assert_eq!(
            redis_common::complete(s, &id, &ClaimToken::random(), LONG)
                .await
                .unwrap(),
            Fenced::Superseded
        );
        if i % 2 == 0 {
            assert_eq!(
                redis_common::complete(s, &id, &t, LONG).await.unwrap(),
                Fenced::Applied
            );
            assert_eq!(
                redis_common::claim(s, &id, LONG).await.unwrap(),
                Claim::AlreadyHandled
            );
        } else {
            assert_eq!(
                redis_common::release(s, &id, &t).await.unwrap(),
                Fenced::Applied
            );
            started(redis_common::claim(s, &id, LONG).await.unwrap());
        }
    }
}

#[tokio::test]
async fn cluster_store_semantics() {
    let Some(cluster) = cluster::shared().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let s = cluster_store(RedisStoreConfig::cluster(cluster.urls.clone()), &prefix);
    store_semantics(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_two_receivers_on_a_cluster() {
    let Some(cluster) = cluster::shared().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    exactly_once_across_receivers(200, Unavailable::Retried, || {
        cluster_store(RedisStoreConfig::cluster(cluster.urls.clone()), &prefix)
    })
    .await;
    // The 200 keys are spread over the three masters' slots (and copied to their replicas).
    let mut per_master = Vec::new();
    for m in cluster.masters().await {
        let mut node = redis_common::raw(&m.url).await;
        let keys: Vec<String> = node.keys(format!("{prefix}*")).await.unwrap();
        per_master.push(keys.len());
    }
    eprintln!("keys per master: {per_master:?}");
    assert_eq!(per_master.len(), 3);
    assert_eq!(per_master.iter().sum::<usize>(), 200);
    assert!(per_master.iter().all(|&n| n > 0), "{per_master:?}");
}
