//! A master of the plain cluster killed mid-stream, once its replica has acknowledged every
//! write so far: deliveries get 503 until the replica has taken over, then every event is
//! handled exactly once and every answered 200 has its claim recorded.
//!
//! (A master killed with writes its replica has not received yet loses them: replication is
//! asynchronous. That window is documented on `RedisStore`, not tested.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kinde_core::store::RedisStoreConfig;
use kinde_core::testing::{TestEvent, TestIssuer};
use tokio::time::Instant;

use crate::cluster::cluster_store;
use crate::redis_common::cluster::{self, info};
use crate::redis_common::{self, answer, deliver, Counter};

/// Waits (at most `bound`) until `done` says so; panics with `what` otherwise.
async fn until(what: &str, bound: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_once_its_replica_caught_up_fails_over_and_nothing_is_lost_or_doubled() {
    let Some(cluster) = cluster::exclusive().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    let store = cluster_store(RedisStoreConfig::cluster(cluster.urls.clone()), &prefix);
    store.ping().await.unwrap();
    // A claim whose reply is lost with the master blocks its retries (409) this long.
    let tune = |b: kinde_core::WebhooksBuilder| {
        b.processing_ttl(Duration::from_secs(5))
            .handler_timeout(Duration::from_secs(2))
    };
    let webhooks = redis_common::receiver(jwks.url(), store, &counter, tune);

    let nodes = cluster.nodes().await;
    let victim = nodes.iter().find(|n| n.is_master).unwrap().clone();
    let replica = nodes
        .iter()
        .find(|n| n.master_id.as_deref() == Some(victim.id.as_str()))
        .expect("the victim's replica")
        .clone();

    // The stream: one delivery after another, each a new event, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (webhooks, counter, issuer, stop) = (
            webhooks.clone(),
            counter.clone(),
            issuer.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut delivered = Vec::new();
            while !stop.load(Ordering::SeqCst) && delivered.len() < 5000 {
                let ev = TestEvent::sample("user.created");
                let id = ev.id().to_owned();
                let token = issuer.sign(&ev.into_claims());
                let a = answer(&deliver(&webhooks, &token).await);
                if a.0 == 503 {
                    assert_eq!(counter.runs(&id), 0, "{id} ran but was answered 503");
                }
                delivered.push((id, token, a));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            delivered
        })
    };
    until("30 events handled", Duration::from_secs(60), async || {
        counter.total() >= 30
    })
    .await;

    // Hold the victim's writes (the deliveries routed to it wait), then wait until its replica
    // has received and acknowledged everything the victim accepted.
    let mut v = redis_common::raw(&victim.url).await;
    let mut r = redis_common::raw(&replica.url).await;
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "30000", "WRITE"][..])
        .query_async(&mut v)
        .await
        .unwrap();
    let mut offsets = String::new();
    until(
        "the replica acknowledging every write",
        Duration::from_secs(20),
        async || {
            let master = info(&mut v, "replication").await;
            let ours = info(&mut r, "replication").await;
            let written = master.get("master_repl_offset").cloned();
            let acked = master
                .get("slave0")
                .and_then(|s| s.split(',').find_map(|f| f.strip_prefix("offset=")))
                .map(str::to_owned);
            let processed = ours.get("slave_repl_offset").cloned();
            offsets =
                format!("written {written:?}, acknowledged {acked:?}, processed {processed:?}");
            written.is_some() && written == acked && written == processed
        },
    )
    .await;
    eprintln!("victim {} before the kill: {offsets}", victim.port);

    let killed_at = Instant::now();
    let killed = cluster.kill(victim.port).await;
    until(
        "the replica taking over",
        Duration::from_secs(60),
        async || {
            let repl = info(&mut r, "replication").await;
            repl.get("role").map(String::as_str) == Some("master")
        },
    )
    .await;
    eprintln!(
        "replica {} is master {:?} after the kill",
        replica.port,
        killed_at.elapsed()
    );
    let handled_at_failover = counter.total();
    until(
        "30 more events handled after the failover",
        Duration::from_secs(60),
        async || counter.total() >= handled_at_failover + 30,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let delivered = stream.await.unwrap();

    let refused = delivered.iter().filter(|d| d.2 .0 == 503).count();
    eprintln!(
        "stream of {}: {} handled, {refused} answered 503 around the failover",
        delivered.len(),
        delivered.iter().filter(|d| d.2 == (200, "handled")).count()
    );
    assert!(refused > 0, "no delivery met the failover");
    for (_, _, a) in &delivered {
        assert!(
            matches!(a, (200, "handled") | (503, "store_unavailable")),
            "{a:?}"
        );
    }

    // Kinde retries whatever was not answered 200.
    let mut pending: Vec<usize> = (0..delivered.len())
        .filter(|&i| delivered[i].2 .0 != 200)
        .collect();
    let mut in_progress = 0;
    for _ in 0..200 {
        if pending.is_empty() {
            break;
        }
        let mut still = Vec::new();
        for i in pending {
            let a = answer(&deliver(&webhooks, &delivered[i].1).await);
            // 409: a claim the victim executed whose reply was lost with it (until its TTL).
            assert!(
                matches!(
                    a,
                    (200, "handled") | (503, "store_unavailable") | (409, "in_progress")
                ),
                "{a:?}"
            );
            in_progress += usize::from(a.0 == 409);
            if a.0 != 200 {
                still.push(i);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pending.is_empty(), "{} events never settled", pending.len());
    eprintln!("retries answered 409 {in_progress} times");

    // Exactly once each.
    for (id, _, _) in &delivered {
        assert_eq!(counter.runs(id), 1, "{id}");
    }
    assert_eq!(counter.total(), delivered.len());

    // Every event is recorded on the cluster as it is now: handled (`d`), or claimed (`p:…`) by
    // a delivery answered 200 whose completion could not be written in the failover.
    let live: Vec<String> = cluster
        .urls
        .iter()
        .filter(|u| !u.ends_with(&format!(":{}", victim.port)))
        .cloned()
        .collect();
    let mut conn = redis::cluster::ClusterClientBuilder::new(live)
        .connection_timeout(Duration::from_secs(10))
        .response_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let mut claimed_only = 0;
    let mut done = Vec::new();
    for (id, token, _) in &delivered {
        match redis_common::get(&mut conn, &format!("{prefix}{id}")).await {
            Some(v) if v == "d" => done.push(token),
            Some(v) if v.starts_with("p:") => claimed_only += 1,
            other => panic!("{id}: answered 200 but recorded as {other:?}"),
        }
    }
    eprintln!(
        "{} recorded as handled, {claimed_only} as claimed only",
        done.len()
    );
    // And known as handled: a duplicate runs nothing.
    for token in done {
        assert_eq!(answer(&deliver(&webhooks, token).await), (200, "duplicate"));
    }
    assert_eq!(counter.total(), delivered.len());

    // Put the cluster back together: the old master comes back as the new one's replica.
    killed.start().await;
    cluster.wait_healthy().await;
}
