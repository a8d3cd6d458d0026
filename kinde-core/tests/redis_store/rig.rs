//! Two receivers on one Redis (the single server or the cluster), each with its own store under
//! one key prefix, as two processes behind a load balancer would be. Their handlers (for the
//! user events) record what they saw, can be told to fail, and can be held on a gate so that a
//! test delivers something to the other receiver while one runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinde_core::event::{Event, EventMeta, UserCreated, UserDeleted, UserUpdated};
use kinde_core::store::{RedisStore, RedisStoreConfig};
use kinde_core::testing::{JwksServer, TestEvent, TestIssuer};
use kinde_core::{Webhooks, WebhooksBuilder};
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{mpsc, Semaphore};

use crate::cluster::cluster_store;
use crate::redis_common::{self, answer, cluster, deliver};

/// How long a test waits for a held handler to start: far more than any machine takes.
const STARTS_WITHIN: Duration = Duration::from_secs(30);

/// The Redis the receivers share, held for the test.
pub enum Redis {
    Single(redis_common::Single),
    Cluster(cluster::Cluster),
}

impl Redis {
    pub async fn single() -> Option<Self> {
        redis_common::single().await.map(Self::Single)
    }

    pub async fn cluster() -> Option<Self> {
        cluster::shared().await.map(Self::Cluster)
    }

    /// A store with this prefix and generous bounds.
    pub fn store(&self, prefix: &str) -> RedisStore {
        match self {
            Self::Single(s) => redis_common::store(&s.url, prefix),
            Self::Cluster(c) => cluster_store(RedisStoreConfig::cluster(c.urls.clone()), prefix),
        }
    }

    /// A plain connection, to look at keys.
    pub async fn raw(&self) -> Raw {
        match self {
            Self::Single(s) => Raw::Single(redis_common::raw(&s.url).await),
            Self::Cluster(c) => {
                let client = redis::cluster::ClusterClientBuilder::new(c.urls.clone())
                    .connection_timeout(Duration::from_secs(10))
                    .response_timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                Raw::Cluster(client.get_async_connection().await.unwrap())
            }
        }
    }
}

/// A plain connection to the single server or the cluster.
#[derive(Clone)]
pub enum Raw {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Raw {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Raw::Single(c) => c.req_packed_command(cmd),
            Raw::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Raw::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Raw::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// A handler call: the event's type, user id and id, and the previous applied event's time.
#[derive(Debug, Clone)]
pub struct Seen {
    pub event_type: String,
    pub user: String,
    pub event_id: String,
    pub previous: Option<OffsetDateTime>,
}

/// What the handlers of both receivers share.
pub struct Handlers {
    seen: Mutex<Vec<Seen>>,
    /// Calls that fail before one succeeds.
    pub fail: AtomicUsize,
    /// Whether calls wait on the gate (after saying they started).
    hold: AtomicBool,
    gate: Semaphore,
    started: mpsc::UnboundedSender<String>,
}

impl Handlers {
    async fn run(&self, user: &str, meta: &EventMeta) -> Result<(), std::io::Error> {
        self.seen.lock().unwrap().push(Seen {
            event_type: meta.event_type.clone(),
            user: user.to_owned(),
            event_id: meta.event_id.to_string(),
            previous: meta.previous_applied_at,
        });
        if self.hold.load(Ordering::SeqCst) {
            let _ = self.started.send(meta.event_id.to_string());
            // (Closed only when the rig is dropped.)
            if let Ok(permit) = self.gate.acquire().await {
                permit.forget();
            }
        }
        let fail = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(std::io::Error::other("handler told to fail"));
        }
        Ok(())
    }
}

pub struct Rig {
    pub issuer: TestIssuer,
    _jwks: JwksServer,
    /// The two receivers.
    pub a: Webhooks,
    pub b: Webhooks,
    pub handlers: Arc<Handlers>,
    started: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    pub prefix: String,
}

fn receiver(
    jwks_url: String,
    store: RedisStore,
    handlers: &Arc<Handlers>,
    tune: impl FnOnce(WebhooksBuilder) -> WebhooksBuilder,
) -> Webhooks {
    let (h1, h2, h3) = (handlers.clone(), handlers.clone(), handlers.clone());
    let builder = Webhooks::builder()
        .issuer(jwks_url)
        .store(store)
        // Generous: a held handler waits for the test, never for a timeout.
        .handler_timeout(Duration::from_secs(60))
        .processing_ttl(Duration::from_secs(120))
        .on(move |e: Event<UserCreated>| {
            let h = h1.clone();
            async move { h.run(&e.data.user.id, &e.meta).await }
        })
        .on(move |e: Event<UserUpdated>| {
            let h = h2.clone();
            async move { h.run(&e.data.user.id, &e.meta).await }
        })
        .on(move |e: Event<UserDeleted>| {
            let h = h3.clone();
            async move { h.run(&e.data.user.id, &e.meta).await }
        });
    tune(builder).build().unwrap()
}

/// Two receivers on `redis`, under a fresh prefix, each built with `tune`.
pub async fn rig(redis: &Redis, tune: impl Fn(WebhooksBuilder) -> WebhooksBuilder) -> Rig {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let handlers = Arc::new(Handlers {
        seen: Mutex::default(),
        fail: AtomicUsize::new(0),
        hold: AtomicBool::new(false),
        gate: Semaphore::new(0),
        started: tx,
    });
    let prefix = redis_common::unique_prefix();
    let (sa, sb) = (redis.store(&prefix), redis.store(&prefix));
    // Connected before the test, so that no first connection races a held handler.
    sa.ping().await.unwrap();
    sb.ping().await.unwrap();
    Rig {
        a: receiver(jwks.url(), sa, &handlers, &tune),
        b: receiver(jwks.url(), sb, &handlers, &tune),
        issuer,
        _jwks: jwks,
        handlers,
        started: tokio::sync::Mutex::new(rx),
        prefix,
    }
}

/// `minutes` ago.
pub fn ago(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(minutes)
}

/// `data` of a user event for user `id`.
pub fn user(id: &str) -> serde_json::Value {
    json!({"user": {"id": id, "email": format!("{id}@example.com")}})
}

impl Rig {
    /// A signed event of `ty` about user `id`, at `at`; and its event id.
    pub fn event(&self, ty: &str, id: &str, at: OffsetDateTime) -> (String, String) {
        self.raw_event(ty, user(id), at)
    }

    /// A signed event with this `data`; and its event id.
    pub fn raw_event(
        &self,
        ty: &str,
        data: serde_json::Value,
        at: OffsetDateTime,
    ) -> (String, String) {
        let ev = TestEvent::raw(ty, data).timestamp(at);
        let id = ev.id().to_owned();
        (self.issuer.sign(&ev.into_claims()), id)
    }

    /// Holds every handler call from now on at the gate.
    pub fn hold(&self) {
        self.handlers.hold.store(true, Ordering::SeqCst);
    }

    /// Stops holding, and lets every held call go on.
    pub fn open(&self) {
        self.handlers.hold.store(false, Ordering::SeqCst);
        self.handlers.gate.add_permits(1000);
    }

    /// Waits until a held call has started; its event id.
    pub async fn started(&self) -> String {
        let mut rx = self.started.lock().await;
        tokio::time::timeout(STARTS_WITHIN, rx.recv())
            .await
            .expect("the held handler did not start")
            .expect("the handlers are alive")
    }

    /// `(type, user)` of every handler call so far.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.seen()
            .into_iter()
            .map(|s| (s.event_type, s.user))
            .collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.handlers.seen.lock().unwrap().clone()
    }
}

/// Delivers `token` to `webhooks`: `(status, code)`. A `503 store_unavailable` (no handler
/// ran: a cluster node under load may be failed over for a moment) is retried, as Kinde would,
/// at most 100 times 50 ms apart; the tests expect none otherwise.
pub async fn send(webhooks: &Webhooks, token: &str) -> (u16, &'static str) {
    for _ in 0..100 {
        let a = answer(&deliver(webhooks, token).await);
        if a != (503, "store_unavailable") {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the store stayed unavailable for 100 deliveries");
}

/// Delivers `token` in a task of its own (to hold its handler while the test goes on).
pub fn spawn_send(
    webhooks: &Webhooks,
    token: &str,
) -> tokio::task::JoinHandle<(u16, &'static str)> {
    let (webhooks, token) = (webhooks.clone(), token.to_owned());
    tokio::spawn(async move { send(&webhooks, &token).await })
}

/// The signed timestamp as ordering compares it.
pub fn micros(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1000
}
