//! A slot of the plain cluster moved from one master to another while stores use it: `ASK`
//! redirections while the slot migrates, `MOVED` once it has moved (`CLUSTER SETSLOT …
//! IMPORTING/MIGRATING`, `MIGRATE`, `CLUSTER SETSLOT … NODE`, as `redis-cli --cluster reshard`
//! does it).

use std::sync::Arc;

use kinde_core::store::{Claim, Fenced, RedisStoreConfig};
use kinde_core::testing::{TestEvent, TestIssuer};
use redis::aio::MultiplexedConnection;

use crate::cluster::cluster_store;
use crate::redis_common::cluster::{self, Node};
use crate::redis_common::{self, answer, deliver, started, Counter, LONG};

async fn setslot(conn: &mut MultiplexedConnection, slot: u16, args: &[&str]) {
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg(args)
        .query_async(conn)
        .await
        .unwrap();
}

async fn count(conn: &mut MultiplexedConnection, slot: u16) -> usize {
    redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(conn)
        .await
        .unwrap()
}

/// `MIGRATE`s `keys` from the node of `from` to `to`.
async fn migrate(from: &mut MultiplexedConnection, to: &Node, keys: &[String]) {
    let _: () = redis::cmd("MIGRATE")
        .arg(&["127.0.0.1", &to.port.to_string(), "", "0", "10000", "KEYS"][..])
        .arg(keys)
        .query_async(from)
        .await
        .unwrap();
}

/// The redirection a plain connection to `conn` gets for `key` (`ASK`, `MOVED`), if any.
async fn redirection(conn: &mut MultiplexedConnection, key: &str) -> Option<String> {
    match redis::cmd("GET")
        .arg(key)
        .query_async::<Option<String>>(conn)
        .await
    {
        Ok(_) => None,
        Err(e) => Some(e.code().unwrap_or("?").to_owned()),
    }
}

/// Clears the migration states if the test stops half-way (the slot stays with its source).
struct Unsettled {
    urls: Vec<String>,
    slot: u16,
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        for url in &self.urls {
            if let Ok(mut c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
                let _: Result<(), _> = redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(self.slot)
                    .arg("STABLE")
                    .query(&mut c);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_and_moved_during_and_after_a_slot_migration_are_followed() {
    let Some(cluster) = cluster::exclusive().await else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    // Event ids with one hash tag: all their keys are in one slot, one that holds nothing yet
    // (earlier tests and runs leave keys in random slots; the counts below are this test's).
    let masters = cluster.masters().await;
    let mut empty = None;
    for _ in 0..1000 {
        let tag = format!("mv{:08x}", rand::random::<u32>());
        let slot = cluster.slot_of(&format!("{{{tag}}}")).await;
        let owner = masters.iter().find(|m| m.owns(slot)).unwrap();
        if count(&mut redis_common::raw(&owner.url).await, slot).await == 0 {
            empty = Some((tag, slot));
            break;
        }
    }
    let (tag, slot) = empty.expect("an empty slot among 1000 random ones");
    let id = |n: &str| format!("{{{tag}}}{n}");
    let key = |n: &str| format!("{prefix}{}", id(n));
    assert_eq!(cluster.slot_of(&key("a")).await, slot);
    let source = masters.iter().find(|m| m.owns(slot)).unwrap().clone();
    let dest = masters.iter().find(|m| m.id != source.id).unwrap().clone();
    eprintln!("slot {slot}: from {} to {}", source.port, dest.port);

    let s = cluster_store(RedisStoreConfig::cluster(cluster.urls.clone()), &prefix);
    s.ping().await.unwrap();
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    let through = cluster_store(RedisStoreConfig::cluster(cluster.urls.clone()), &prefix);
    through.ping().await.unwrap();
    let webhooks = redis_common::receiver(jwks.url(), through, &counter, |b| b);
    let event = |n: &str| {
        issuer.sign(
            &TestEvent::sample("user.created")
                .event_id(id(n))
                .into_claims(),
        )
    };
    let (e, f) = (event("e"), event("f"));

    // Before: `a` claimed (in progress), `b` handled.
    let ta = started(redis_common::claim(&s, &id("a"), LONG).await.unwrap());
    let tb = started(redis_common::claim(&s, &id("b"), LONG).await.unwrap());
    assert_eq!(
        redis_common::complete(&s, &id("b"), &tb, LONG)
            .await
            .unwrap(),
        Fenced::Applied
    );

    // The migration starts; `a` moves to the destination, `b` stays.
    let mut src = redis_common::raw(&source.url).await;
    let mut dst = redis_common::raw(&dest.url).await;
    let unsettled = Unsettled {
        urls: vec![source.url.clone(), dest.url.clone()],
        slot,
    };
    setslot(&mut dst, slot, &["IMPORTING", &source.id]).await;
    setslot(&mut src, slot, &["MIGRATING", &dest.id]).await;
    migrate(&mut src, &dest, &[key("a")]).await;
    assert_eq!(
        (count(&mut src, slot).await, count(&mut dst, slot).await),
        (1, 1)
    );
    assert_eq!(
        redirection(&mut src, &key("a")).await.as_deref(),
        Some("ASK")
    );

    // ASK: the source still owns the slot and redirects for the keys it no longer (or never)
    // had; the store follows.
    assert_eq!(
        redis_common::claim(&s, &id("a"), LONG).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        redis_common::complete(&s, &id("a"), &ta, LONG)
            .await
            .unwrap(),
        Fenced::Applied
    );
    assert_eq!(
        redis_common::claim(&s, &id("a"), LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
    assert_eq!(
        redis_common::claim(&s, &id("b"), LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
    let tc = started(redis_common::claim(&s, &id("c"), LONG).await.unwrap());
    assert_eq!(count(&mut dst, slot).await, 2, "created on the destination");
    assert_eq!(
        redis_common::release(&s, &id("c"), &tc).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(count(&mut dst, slot).await, 1);
    assert_eq!(answer(&deliver(&webhooks, &e).await), (200, "handled"));
    assert_eq!(answer(&deliver(&webhooks, &e).await), (200, "duplicate"));
    assert_eq!(count(&mut dst, slot).await, 2);

    // The migration ends: the rest moves, and the slot is the destination's everywhere.
    let rest: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1000)
        .query_async(&mut src)
        .await
        .unwrap();
    assert_eq!(rest, vec![key("b")]);
    migrate(&mut src, &dest, &rest).await;
    setslot(&mut dst, slot, &["NODE", &dest.id]).await;
    setslot(&mut src, slot, &["NODE", &dest.id]).await;
    for m in &masters {
        if m.id != source.id && m.id != dest.id {
            setslot(
                &mut redis_common::raw(&m.url).await,
                slot,
                &["NODE", &dest.id],
            )
            .await;
        }
    }
    drop(unsettled);
    assert_eq!(
        (count(&mut src, slot).await, count(&mut dst, slot).await),
        (0, 3)
    );
    assert_eq!(
        redirection(&mut src, &key("b")).await.as_deref(),
        Some("MOVED")
    );

    // MOVED: both stores still map the slot to the source; they follow.
    assert_eq!(
        redis_common::claim(&s, &id("b"), LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
    assert_eq!(
        redis_common::claim(&s, &id("a"), LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
    let td = started(redis_common::claim(&s, &id("d"), LONG).await.unwrap());
    assert_eq!(
        redis_common::complete(&s, &id("d"), &td, LONG)
            .await
            .unwrap(),
        Fenced::Applied
    );
    assert_eq!(
        redis_common::claim(&s, &id("d"), LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
    assert_eq!(answer(&deliver(&webhooks, &e).await), (200, "duplicate"));
    assert_eq!(answer(&deliver(&webhooks, &f).await), (200, "handled"));
    assert_eq!(answer(&deliver(&webhooks, &f).await), (200, "duplicate"));
    assert_eq!(count(&mut dst, slot).await, 5);
    assert_eq!((counter.runs(&id("e")), counter.runs(&id("f"))), (1, 1));
    assert_eq!(counter.total(), 2);
    cluster.wait_healthy().await;
}
