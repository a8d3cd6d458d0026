//! The clusters of `scripts/redis-up.sh` (3 masters with a replica each): who is master of
//! what, killing and restarting a node, and waiting until the cluster is whole again.
//!
//! The plain cluster is shared by the tests of a binary, which run in parallel: the tests that
//! fail it over or move slots take it exclusively ([`exclusive`]), the others share it
//! ([`shared`]), and each starts by waiting until it is healthy.

use std::time::Duration;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::time::Instant;

use super::{env_or_skip, url_list};

static CLUSTER: RwLock<()> = RwLock::const_new(());

/// How long a cluster may take to become healthy again: a failover plus a replica's full
/// resynchronisation, on a loaded machine.
pub const HEALING: Duration = Duration::from_secs(90);

enum Guard {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// A cluster, held for the test.
pub struct Cluster {
    /// Its six nodes.
    pub urls: Vec<String>,
    node_cmd: Option<String>,
    _guard: Guard,
}

/// The plain cluster, shared with the other tests that only use it.
pub async fn shared() -> Option<Cluster> {
    let urls = url_list(&env_or_skip("KINDE_TEST_REDIS_CLUSTER_URLS")?);
    let cluster = Cluster {
        urls,
        node_cmd: None,
        _guard: Guard::Shared(CLUSTER.read().await),
    };
    cluster.wait_healthy().await;
    Some(cluster)
}

/// The plain cluster, for this test alone: it may kill nodes and move slots.
pub async fn exclusive() -> Option<Cluster> {
    let urls = url_list(&env_or_skip("KINDE_TEST_REDIS_CLUSTER_URLS")?);
    let node_cmd = env_or_skip("KINDE_TEST_REDIS_NODE_CMD")?;
    let cluster = Cluster {
        urls,
        node_cmd: Some(node_cmd),
        _guard: Guard::Exclusive(CLUSTER.write().await),
    };
    cluster.wait_healthy().await;
    Some(cluster)
}

/// The TLS cluster (nobody kills its nodes): its URLs.
pub fn tls_urls() -> Option<Vec<String>> {
    Some(url_list(&env_or_skip("KINDE_TEST_REDIS_TLS_CLUSTER_URLS")?))
}

/// One node, as it sees itself (`CLUSTER NODES`, its `myself` line).
#[derive(Debug, Clone)]
pub struct Node {
    pub url: String,
    pub port: u16,
    pub id: String,
    pub is_master: bool,
    /// The master of a replica.
    pub master_id: Option<String>,
    /// The slot ranges of a master, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl Node {
    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A connection to `url`, or `None` if it does not answer within a few seconds (killed).
pub async fn try_raw(url: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    let config = super::raw_config().set_connection_timeout(Some(Duration::from_secs(5)));
    let connect = client.get_multiplexed_async_connection_with_config(&config);
    tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .ok()?
        .ok()
}

/// `INFO <section>` of a connection, as `field -> value`.
pub async fn info(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
) -> std::collections::HashMap<String, String> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

impl Cluster {
    /// Every node that answers, as it sees itself.
    pub async fn nodes(&self) -> Vec<Node> {
        let mut nodes = Vec::new();
        for url in &self.urls {
            let Some(mut c) = try_raw(url).await else {
                continue;
            };
            let Ok(text) = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(&mut c)
                .await
            else {
                continue;
            };
            let Some(line) = text.lines().find(|l| l.contains("myself")) else {
                continue;
            };
            let f: Vec<&str> = line.split_whitespace().collect();
            let is_master = f[2].contains("master");
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (s.parse().unwrap(), s.parse().unwrap()),
                })
                .collect();
            nodes.push(Node {
                url: url.clone(),
                port: port_of(url),
                id: f[0].to_owned(),
                is_master,
                master_id: (f[3] != "-").then(|| f[3].to_owned()),
                slots,
            });
        }
        nodes
    }

    /// The masters, as they see themselves.
    pub async fn masters(&self) -> Vec<Node> {
        self.nodes()
            .await
            .into_iter()
            .filter(|n| n.is_master)
            .collect()
    }

    /// The slot of `key`.
    pub async fn slot_of(&self, key: &str) -> u16 {
        for url in &self.urls {
            if let Some(mut c) = try_raw(url).await {
                return redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        }
        panic!("no cluster node answers");
    }

    /// Why the cluster is not healthy yet, or `None` when every node says `cluster_state:ok`
    /// and knows all six, three masters own every slot, and each has one replica in sync.
    pub async fn unhealthy(&self) -> Option<String> {
        let mut masters = 0;
        let mut synced = 0;
        let mut slots = 0;
        for url in &self.urls {
            let Some(mut c) = try_raw(url).await else {
                return Some(format!("{url} does not answer"));
            };
            let cluster = info_cluster(&mut c).await;
            if cluster.get("cluster_state").map(String::as_str) != Some("ok")
                || cluster.get("cluster_known_nodes").map(String::as_str) != Some("6")
            {
                return Some(format!("{url}: {cluster:?}"));
            }
            let repl = info(&mut c, "replication").await;
            match repl.get("role").map(String::as_str) {
                Some("master")
                    if repl.get("connected_slaves").map(String::as_str) == Some("1")
                        && repl
                            .get("slave0")
                            .is_some_and(|s| s.contains("state=online")) =>
                {
                    masters += 1;
                }
                Some("slave")
                    if repl.get("master_link_status").map(String::as_str) == Some("up")
                        && repl.get("master_sync_in_progress").map(String::as_str) == Some("0") =>
                {
                    synced += 1;
                }
                _ => return Some(format!("{url}: replication {repl:?}")),
            }
        }
        for m in self.masters().await {
            slots += m
                .slots
                .iter()
                .map(|&(a, b)| usize::from(b - a) + 1)
                .sum::<usize>();
        }
        (masters != 3 || synced != 3 || slots != 16384)
            .then(|| format!("{masters} masters, {synced} synced replicas, {slots} slots"))
    }

    /// Waits (at most [`HEALING`]) until the cluster is healthy; panics with its state if not.
    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + HEALING;
        loop {
            let Some(why) = self.unhealthy().await else {
                return;
            };
            assert!(
                Instant::now() < deadline,
                "the cluster is not healthy after {HEALING:?}: {why}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the node on `port` with SIGKILL (as a crash) and waits until it is gone. The
    /// node is started again by [`Killed::start`], or when the guard is dropped (a failed test
    /// leaves the cluster whole for the next one).
    pub async fn kill(&self, port: u16) -> Killed {
        let cmd = self.node_cmd.clone().expect("an exclusive cluster");
        let kill = format!("{cmd} kill {port}");
        tokio::task::spawn_blocking(move || super::sh(&kill))
            .await
            .unwrap();
        Killed {
            start: Some(format!("{cmd} start {port}")),
        }
    }
}

/// A node killed by [`Cluster::kill`].
pub struct Killed {
    start: Option<String>,
}

impl Killed {
    /// Starts it again, with its config and directory; waits until it answers PING.
    pub async fn start(mut self) {
        let start = self.start.take().unwrap();
        tokio::task::spawn_blocking(move || super::sh(&start))
            .await
            .unwrap();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(start) = self.start.take() {
            super::sh(&start);
        }
    }
}

async fn info_cluster(
    conn: &mut redis::aio::MultiplexedConnection,
) -> std::collections::HashMap<String, String> {
    let text: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(conn)
        .await
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}
