//! The Redis idempotency store (feature `redis`): one key per event, fenced by a token.

mod config;
mod conn;

pub use config::{FailMode, RedisConfigError, RedisStoreConfig};

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{RedisError, Script};
use async_trait::async_trait;

use self::conn::{from_redis, LazyConn};
use super::{Claim, ClaimToken, Fenced, IdempotencyStore, StoreError};
use crate::event::is_valid_id;

/// The value of a handled event.
const DONE: &[u8] = b"d";
/// The prefix of the value of a claim being processed: `p:<token>`.
const PROCESSING: &[u8] = b"p:";
/// The prefix of the tokens handed out when failing open: they fence nothing.
const FAIL_OPEN: &str = "fail-open:";

/// `complete`: mark handled for `ARGV[2]` ms, only if the claim is still `ARGV[1]`.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2]) return 1 \
         end return 0",
    )
});

/// `release`: delete the claim, only if it is still `ARGV[1]`.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             redis.call('DEL', KEYS[1]) return 1 \
         end return 0",
    )
});

/// An [`IdempotencyStore`] in Redis, shared by every receiver instance that uses the same Redis
/// and key prefix: a retry or duplicate delivered to any of them is recognised. Works on a
/// single server and, unchanged, on Redis Cluster (every operation touches exactly one key).
///
/// ```no_run
/// use std::time::Duration;
/// use kinde_core::store::{RedisStore, RedisStoreConfig};
/// use kinde_core::{Event, Webhooks, event::UserCreated};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Connects to nothing yet: a receiver can start while Redis is down.
/// let store = RedisStore::new(
///     RedisStoreConfig::new("redis://redis.internal:6379")
///         .key_prefix("acme:kinde:")
///         .command_timeout(Duration::from_millis(500)),
/// )?;
/// // A cluster: RedisStoreConfig::cluster(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"]).
/// let webhooks = Webhooks::builder()
///     .issuer("https://acme.kinde.com")
///     .store(store)
///     .on(|e: Event<UserCreated>| async move {
///         println!("new user {}", e.data.user.id);
///         Ok::<_, std::io::Error>(())
///     })
///     .build()?;
/// # let _ = webhooks; Ok(()) }
/// ```
///
/// # How it works
///
/// Event `E` lives at key `<prefix>E` (default prefix `kinde:webhook:`):
///
/// - **claim** is one atomic `SET key p:<token> NX PX <processing_ttl> GET` (never a GET then
///   a SET): no previous value means the claim is ours (`StartProcessing`), `d` means handled
///   (`AlreadyHandled`, 200), `p:…` means another delivery holds it (`InProgress`, 409).
/// - **complete** and **release** are Lua scripts that act only if the key still holds
///   `p:<our token>`: complete sets `d` for `done_ttl`, release deletes the key. Otherwise they
///   change nothing and return [`Fenced::Superseded`] (a receiver whose claim expired and was
///   taken over cannot overwrite the new claim).
///
/// Event ids must be at most 256 bytes of visible ASCII (as the verifier already requires);
/// others fail with [`StoreError::InvalidKey`] before reaching Redis.
///
/// # Connections and failures
///
/// Building the store connects to nothing. The first operation dials; a single server is used
/// through a [`ConnectionManager`](::redis::aio::ConnectionManager), which redials by itself
/// after the link drops, and a cluster through a
/// [`ClusterConnection`](::redis::cluster_async::ClusterConnection), which follows slot moves
/// and failovers. Each operation waits at most the command timeout (plus the connect timeout
/// while a connection is being created); while Redis is unreachable every operation fails
/// promptly with [`StoreError::Unavailable`] or [`StoreError::Timeout`], and recovers by itself
/// once Redis answers again.
///
/// By default the store **fails closed**: the receiver answers `503 store_unavailable` and
/// Kinde retries later, so nothing is lost and nothing runs twice. [`FailMode::Open`] trades
/// deduplication for availability instead; read its caveats first.
///
/// A claim whose reply was lost (Redis went away after executing it) fails with an error and
/// stays in place until the processing TTL expires: retries get 409 meanwhile, then run.
///
/// # Operating Redis for it
///
/// - **Redis 7.0 or newer** (`SET … NX GET`).
/// - **Eviction must not drop these keys**: set `maxmemory-policy` to `noeviction` (writes then
///   fail when Redis is full, and deliveries get 503) or a `volatile-*` policy (every key here
///   has a TTL, so it can still be evicted under pressure: an evicted "handled" key lets a late
///   retry run again; an evicted claim lets a concurrent duplicate run). `allkeys-*` policies
///   silently forget events.
/// - **Memory**: one small key per event for `done_ttl` (72 h by default), i.e. roughly
///   100 bytes × the events of 72 h.
/// - **Durability and failover**: replication is asynchronous, so a primary that fails right
///   after accepting a claim or a completion may lose it; the promoted replica then lets a
///   retry of that event run its handler again. The same applies to a restart without
///   persistence (use AOF, `appendfsync everysec` or `always`). Such duplicates are rare but
///   possible, so **handlers should still be idempotent** (e.g. upsert by the Kinde id).
/// - **Sharing**: all receivers of one application must use the same Redis (or cluster) and
///   key prefix; keep the prefix distinct per application.
pub struct RedisStore {
    conn: LazyConn,
    prefix: String,
    command_timeout: Duration,
    fail_mode: FailMode,
    cluster: bool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("cluster", &self.cluster)
            .field("command_timeout", &self.command_timeout)
            .field("fail_mode", &self.fail_mode)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store with this configuration. Checks the URLs and timeouts; connects to nothing, so
    /// it succeeds while Redis is down (operations fail until Redis is reachable). Needs no
    /// runtime; operations need a tokio runtime.
    pub fn new(config: RedisStoreConfig) -> Result<Self, RedisConfigError> {
        Ok(Self {
            conn: LazyConn::new(&config)?,
            prefix: config.key_prefix,
            command_timeout: config.command_timeout,
            fail_mode: config.fail_mode,
            cluster: config.cluster,
        })
    }

    /// A store for a single server at `url`, with the default settings.
    pub fn open(url: &str) -> Result<Self, RedisConfigError> {
        Self::new(RedisStoreConfig::new(url))
    }

    /// The prefix of every key.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Whether Redis answers a `PING` (e.g. for a readiness probe), with the same bounds and
    /// errors as the other operations. Not needed before use.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move { ::redis::cmd("PING").query_async::<()>(&mut c).await })
            .await
    }

    /// The key of `event_id`, if it is acceptable.
    fn key(&self, event_id: &str) -> Result<String, StoreError> {
        if !is_valid_id(event_id.as_bytes()) {
            return Err(StoreError::InvalidKey);
        }
        Ok(format!("{}{event_id}", self.prefix))
    }

    /// Runs one command on the (lazily created) connection, bounded by the command timeout.
    ///
    /// A command refused at connect time was never sent, so it is tried once more: the failure
    /// has made the connection manager dial again, and a Redis that just came back then answers
    /// the first delivery instead of a stale connection error.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: Fn(conn::Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        // Creating the connection is bounded by the connect timeout, the command by its own.
        let first = self.conn.get().await?;
        let attempts = async {
            let mut next = Some(first);
            loop {
                let retried = next.is_none();
                let (generation, conn) = match next.take() {
                    Some(c) => c,
                    None => self.conn.get().await?,
                };
                match command(conn).await {
                    Ok(v) => return Ok(v),
                    // Loop once more, with `next` empty: that was the retry.
                    Err(e) if e.is_connection_refusal() && !retried => {}
                    Err(e) => {
                        self.conn.failed(generation, &e);
                        return Err(from_redis(e, self.command_timeout));
                    }
                }
            }
        };
        tokio::time::timeout(self.command_timeout, attempts)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.command_timeout)))
    }

    async fn fenced(
        &self,
        script: &Script,
        key: String,
        args: &[Vec<u8>],
    ) -> Result<Fenced, StoreError> {
        let key = key.as_str();
        let applied: i64 = self
            .run(|mut c| async move {
                let mut call = script.key(key);
                for a in args {
                    call.arg(a.as_slice());
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(if applied == 1 {
            Fenced::Applied
        } else {
            Fenced::Superseded
        })
    }

    async fn try_claim(&self, key: String, processing_ttl: Duration) -> Result<Claim, StoreError> {
        let token = ClaimToken::random();
        let value = processing_value(&token);
        let (key, value) = (&key, &value);
        let previous: Option<Vec<u8>> = self
            .run(|mut c| async move {
                ::redis::cmd("SET")
                    .arg(key.as_str())
                    .arg(value.as_slice())
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(processing_ttl))
                    .arg("GET")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        match previous.as_deref() {
            None => Ok(Claim::StartProcessing(token)),
            Some(DONE) => Ok(Claim::AlreadyHandled),
            Some(v) if v.starts_with(PROCESSING) => Ok(Claim::InProgress),
            Some(_) => Err(StoreError::Unavailable(
                "the idempotency key holds a value RedisStore did not write (a key prefix shared \
                 with other data?)"
                    .into(),
            )),
        }
    }
}

/// A TTL in whole milliseconds, at least 1 (`PX 0` is an error).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn is_fail_open(token: &ClaimToken) -> bool {
    token.as_str().starts_with(FAIL_OPEN)
}

fn processing_value(token: &ClaimToken) -> Vec<u8> {
    [PROCESSING, token.as_str().as_bytes()].concat()
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn claim(&self, event_id: &str, processing_ttl: Duration) -> Result<Claim, StoreError> {
        let key = self.key(event_id)?;
        match self.try_claim(key, processing_ttl).await {
            Err(e) if self.fail_mode == FailMode::Open => {
                tracing::warn!(
                    error = %e,
                    "Redis idempotency store unavailable; failing open: handling the event \
                     without deduplication (a duplicate may run its handler again)"
                );
                Ok(Claim::StartProcessing(ClaimToken::from_string(format!(
                    "{FAIL_OPEN}{}",
                    ClaimToken::random().as_str()
                ))))
            }
            other => other,
        }
    }

    async fn complete(
        &self,
        event_id: &str,
        token: &ClaimToken,
        done_ttl: Duration,
    ) -> Result<Fenced, StoreError> {
        let key = self.key(event_id)?;
        if is_fail_open(token) {
            // Nothing was recorded at claim time, so there is nothing to complete.
            tracing::debug!("completion of a fail-open claim: nothing recorded");
            return Ok(Fenced::Applied);
        }
        let args = [
            processing_value(token),
            millis(done_ttl).to_string().into_bytes(),
        ];
        self.fenced(&COMPLETE, key, &args).await
    }

    async fn release(&self, event_id: &str, token: &ClaimToken) -> Result<Fenced, StoreError> {
        let key = self.key(event_id)?;
        if is_fail_open(token) {
            tracing::debug!("release of a fail-open claim: nothing recorded");
            return Ok(Fenced::Applied);
        }
        self.fenced(&RELEASE, key, &[processing_value(token)]).await
    }
}
