//! Set-up for the tests against real Redis: the servers started by `scripts/redis-up.sh`
//! (found through `KINDE_TEST_REDIS_*`), unique key prefixes, a raw connection to look at keys,
//! and receivers whose handlers count what they ran. `cluster` has the clusters (topology,
//! killing and restarting nodes), `tls` the TLS servers and their certificates.
//!
//! Without the variables a test prints why and skips, unless `KINDE_REQUIRE_REDIS=1` (CI), which
//! makes it fail.

#![allow(dead_code)]

pub mod cluster;
pub mod tls;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use kinde_core::event::{Event, UserCreated};
use kinde_core::store::{
    Claim, ClaimRequest, ClaimToken, Completion, Fenced, IdempotencyStore, RedisStore,
    RedisStoreConfig, StoreError,
};
use kinde_core::EventId;
use kinde_core::{WebhookResponse, Webhooks, WebhooksBuilder};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The single server is shared by the tests of this binary, which run in parallel; the test that
/// stops it takes this lock exclusively, the others share it.
static SINGLE: RwLock<()> = RwLock::const_new(());

/// The value of `var`; `None` (after saying why) when the test should skip. Panics when it is
/// missing and `KINDE_REQUIRE_REDIS=1`.
#[track_caller]
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            let test = std::thread::current()
                .name()
                .unwrap_or("this test")
                .to_owned();
            if std::env::var("KINDE_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!(
                    "{test}: {var} is not set, and KINDE_REQUIRE_REDIS=1 requires the Redis tests \
                     to run: start the servers with `source scripts/redis-up.sh` first"
                );
            }
            // Written to stderr directly rather than with `eprintln!`, which the test harness
            // captures and hides for passing tests: a skip should be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {var} is not set, so there is no Redis to test against. Run \
                 `source scripts/redis-up.sh` in the same shell first (KINDE_REQUIRE_REDIS=1 \
                 makes this a failure)."
            );
            None
        }
    }
}

/// The single server, shared with the other tests that use it.
pub struct Single {
    pub url: String,
    _shared: RwLockReadGuard<'static, ()>,
}

pub async fn single() -> Option<Single> {
    let url = env_or_skip("KINDE_TEST_REDIS_URL")?;
    Some(Single {
        url,
        _shared: SINGLE.read().await,
    })
}

/// The single server, for this test alone: it may stop and start it. Dropping it starts the
/// server again if the test left it stopped (e.g. by failing).
pub struct Restartable {
    pub url: String,
    stop: String,
    start: String,
    stopped: bool,
    _exclusive: RwLockWriteGuard<'static, ()>,
}

pub async fn restartable() -> Option<Restartable> {
    let url = env_or_skip("KINDE_TEST_REDIS_URL")?;
    let stop = env_or_skip("KINDE_TEST_REDIS_STOP_CMD")?;
    let start = env_or_skip("KINDE_TEST_REDIS_START_CMD")?;
    Some(Restartable {
        url,
        stop,
        start,
        stopped: false,
        _exclusive: SINGLE.write().await,
    })
}

fn sh(command: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .unwrap_or_else(|e| panic!("running `{command}`: {e}"));
    assert!(status.success(), "`{command}` failed: {status}");
}

impl Restartable {
    /// Shuts the server down (`redis-cli shutdown`) and waits until it is gone.
    pub async fn stop(&mut self) {
        let cmd = self.stop.clone();
        tokio::task::spawn_blocking(move || sh(&cmd)).await.unwrap();
        self.stopped = true;
    }

    /// Starts it again on the same port and directory and waits until it answers.
    pub async fn start(&mut self) {
        let cmd = self.start.clone();
        tokio::task::spawn_blocking(move || sh(&cmd)).await.unwrap();
        self.stopped = false;
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        if self.stopped {
            sh(&self.start);
        }
    }
}

/// A comma-separated list of URLs.
pub fn url_list(urls: &str) -> Vec<String> {
    urls.split(',').map(|u| u.trim().to_owned()).collect()
}

/// A TTL nothing in a test outlives.
pub const LONG: Duration = Duration::from_secs(3600);

/// Bounds for stores whose operations are expected to succeed: far above what a loaded
/// machine takes, so that only a real failure fails them.
pub const GENEROUS: Duration = Duration::from_secs(5);

/// The token of a claim that must have started processing.
#[track_caller]
pub fn started(c: Claim) -> ClaimToken {
    match c {
        Claim::StartProcessing { token, .. } => token,
        other => panic!("expected StartProcessing, got {other:?}"),
    }
}

/// `id` as an event id (valid: the tests' ids are).
#[track_caller]
pub fn event_id(id: impl AsRef<str>) -> EventId {
    EventId::new(id.as_ref()).expect("a valid event id")
}

/// A claim of `id` without an entity (done TTL [`LONG`]).
pub async fn claim(
    s: &impl IdempotencyStore,
    id: impl AsRef<str>,
    processing_ttl: Duration,
) -> Result<Claim, StoreError> {
    let id = event_id(id);
    s.claim(&ClaimRequest::new(&id, processing_ttl, LONG)).await
}

/// Completes a claim of `id` without an entity.
pub async fn complete(
    s: &impl IdempotencyStore,
    id: impl AsRef<str>,
    token: &ClaimToken,
    done_ttl: Duration,
) -> Result<Fenced, StoreError> {
    s.complete(&event_id(id), token, &Completion::new(done_ttl))
        .await
}

/// Releases a claim of `id` without an entity.
pub async fn release(
    s: &impl IdempotencyStore,
    id: impl AsRef<str>,
    token: &ClaimToken,
) -> Result<Fenced, StoreError> {
    s.release(&event_id(id), token, None).await
}

/// A store on `url` (single server) with this key prefix and generous timeouts.
pub fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::new(
        RedisStoreConfig::new(url)
            .key_prefix(prefix)
            .command_timeout(GENEROUS)
            .connect_timeout(GENEROUS),
    )
    .unwrap()
}

/// The value at `key`, through a raw connection.
pub async fn get(raw: &mut impl redis::aio::ConnectionLike, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(raw).await.unwrap()
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix() -> String {
    format!("kinde-test:{:016x}:", rand::random::<u64>())
}

/// Bounds for the tests' own connections: redis-rs's defaults (1 s to connect, 500 ms per
/// reply) are short enough for a loaded machine to miss.
pub fn raw_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(10)))
}

/// A plain connection to one server (or one cluster node), to look at keys directly.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        client.get_multiplexed_async_connection_with_config(&raw_config()),
    )
    .await
    .unwrap_or_else(|_| panic!("connecting to {url}: no answer within 30 s"))
    .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// `redis://` on a loopback port nothing listens on.
pub fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://127.0.0.1:{port}")
}

/// What the handlers ran, per event id; can be told to fail and to take a while.
#[derive(Default)]
pub struct Counter {
    runs: Mutex<HashMap<String, usize>>,
    /// Invocations that should fail before one succeeds.
    pub fail_next: AtomicUsize,
    /// How long each invocation takes (to make concurrent duplicates meet).
    pub delay: Mutex<Duration>,
}

impl Counter {
    pub fn with_delay(delay: Duration) -> Arc<Self> {
        let c = Self::default();
        *c.delay.lock().unwrap() = delay;
        Arc::new(c)
    }

    pub fn runs(&self, event_id: &str) -> usize {
        self.runs
            .lock()
            .unwrap()
            .get(event_id)
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.runs.lock().unwrap().values().sum()
    }

    pub fn snapshot(&self) -> HashMap<String, usize> {
        self.runs.lock().unwrap().clone()
    }

    async fn run(&self, event_id: &str) -> Result<(), std::io::Error> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(event_id.to_owned())
            .or_default() += 1;
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let fail = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(std::io::Error::other("handler told to fail"));
        }
        Ok(())
    }
}

/// A receiver for `user.created`, deduplicating in `store`, counting into `counter`.
pub fn receiver(
    jwks_url: String,
    store: RedisStore,
    counter: &Arc<Counter>,
    tune: impl FnOnce(WebhooksBuilder) -> WebhooksBuilder,
) -> Webhooks {
    let c = counter.clone();
    let builder =
        Webhooks::builder()
            .issuer(jwks_url)
            .store(store)
            .on(move |e: Event<UserCreated>| {
                let c = c.clone();
                async move { c.run(&e.meta.event_id).await }
            });
    tune(builder).build().unwrap()
}

pub async fn deliver(webhooks: &Webhooks, token: &str) -> WebhookResponse {
    webhooks.handle(&HeaderMap::new(), token.as_bytes()).await
}

/// `(status, code)` of a response.
pub fn answer(resp: &WebhookResponse) -> (u16, &'static str) {
    (resp.status().as_u16(), resp.outcome().code())
}
