//! The Redis idempotency store (feature `redis`): one key per event (beside its entity's record
//! with ordering on), settled by fenced Lua scripts; parked events in one slot of their own.

mod config;
mod conn;
mod keys;
mod ops;
mod parked;
mod scripts;
mod tls;

pub use config::{FailMode, RedisConfigError, RedisStoreConfig};

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use ::redis::RedisError;
use futures_util::FutureExt as _;

use self::conn::{from_redis, ClientPanicked, LazyConn};
use super::StoreError;
#[cfg(doc)]
use super::{Claim, Failed, Fenced, IdempotencyStore, ParkLimits};

/// An [`IdempotencyStore`] in Redis, shared by every receiver instance that uses the same Redis
/// and key prefix: a retry or duplicate delivered to any of them is recognised, ordering holds
/// across all of them, and the parked events are one set. Works on a single server and,
/// unchanged, on Redis Cluster (every operation is one script on one slot).
///
/// ```no_run
/// use std::time::Duration;
/// use kinde_core::store::{RedisStore, RedisStoreConfig};
/// use kinde_core::{EntityOrdering, Event, Webhooks, event::UserCreated};
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
///     .ordering(EntityOrdering::latest_wins()) // optional: the latest event per user wins
///     .park_after(5) // optional: set a poison event aside on its 5th failure
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
/// Event `E` lives at key `<prefix>E` (default prefix `kinde:webhook:`), as in every earlier
/// version, so deduplication carries over an upgrade. With ordering on, an event of entity `K`
/// (`user:kp_1`, …) lives at `<prefix>{K} e:E` instead, beside the entity's record
/// `<prefix>{K} entity` (a hash: the timestamp applied last, whether it was a deletion, and the
/// event in progress): `{K}` is a cluster hash tag, so one script covers both. (Turning ordering
/// on or off therefore starts deduplication of keyed events afresh: a retry of an event handled
/// just before the switch runs again.) The event's key holds `d` (handled, for the done TTL),
/// `p:<token>…` (claimed), `f:…` (new, with its failures counted, for the done TTL) or `k:…`
/// (parked, no TTL).
///
/// Every operation is one Lua script, sent with `EVALSHA` (loaded once per server), so a
/// delivery costs **two round trips**: the claim and the completion (or release, or failure).
///
/// - **claim** reads the event's state and, with an entity, its record, and takes the claim
///   only if the event is new and no later event of the entity was applied or is in progress
///   ([`Claim`] lists the cases). An older event is recorded handled there and then
///   ([`Claim::Superseded`]).
/// - **complete**, **release** and **fail** act only if the key still holds `p:<our token>…`:
///   complete sets `d` for the done TTL and records the entity's applied timestamp (the latest
///   wins; a deletion leaves a tombstone), release drops the claim, fail counts the failure.
///   Otherwise they change nothing and return [`Fenced::Superseded`] / [`Failed::Superseded`]
///   (a receiver whose claim expired and was taken over cannot overwrite the new claim). Entity
///   records live at least the done TTL after their last change.
///
/// # Parking
///
/// With [`park_after`](crate::WebhooksBuilder::park_after), failures are counted in the event's
/// key (they live the done TTL). The failure that parks an event writes its record to the
/// parked set first, then marks the event parked (so a parked event always has its record, and
/// is always listed): that costs three round trips instead of one, once per parked event. The
/// parked set is one hash, `<prefix>{parked} records`, with its size in `<prefix>{parked} bytes`:
/// one slot for all receivers, so [`ParkLimits`] bound it exactly, whatever the number of
/// receivers or cluster nodes (a park into a full set is [`Failed::ParkFull`]: answered 500,
/// never dropped). That slot's node holds every parked token (at most the byte bound, 64 MiB by
/// default). Listing walks the hash with `HSCAN`. A record can outlive its event's parked state
/// only if the failing delivery's claim expired and was taken over between those two steps
/// (rare): it then stays listed until it is replayed (which settles it like a delivery: run,
/// or `duplicate`) or unparked.
///
/// Event ids are valid keys by construction ([`EventId`](crate::EventId)).
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
/// deduplication (and ordering, and parking) for availability instead; read its caveats first.
///
/// A claim whose reply was lost (Redis went away after executing it) fails with an error and
/// stays in place until the processing TTL expires: retries get 409 meanwhile, then run.
///
/// # TLS
///
/// A `rediss://` URL (all of a cluster's, then) connects over TLS through rustls; nothing else
/// is needed. The server's certificate must name the URL's host (a DNS name, or an IP address
/// in its subjectAltName) and chain to a trusted CA:
///
/// - by default, one of the **platform's trust store**, read with `rustls-native-certs`, which
///   honours `SSL_CERT_FILE` and `SSL_CERT_DIR` (redis-rs reads it again for every new
///   connection, even when a CA bundle is configured, and fails the connection if it cannot);
/// - or exactly the CAs given with [`RedisStoreConfig::tls_ca_pem`], e.g. a managed service's
///   CA bundle or a self-signed CA.
///
/// A server that requires client certificates (`tls-auth-clients yes`) gets the one given with
/// [`RedisStoreConfig::tls_client_cert_pem`]. [`RedisStore::new`] checks all of this before
/// anything connects: the PEMs parse, the key belongs to the certificate, the platform store
/// loads (and holds a CA when no bundle is given), TLS settings come with `rediss://` URLs
/// only, and `#insecure` (no certificate check) is refused. A certificate the server refuses,
/// or a server certificate that does not verify (wrong CA, wrong name, expired), fails each
/// operation with [`StoreError::Unavailable`] (`503 store_unavailable`), never a panic.
///
/// **The crypto provider.** redis-rs takes rustls's *process-level* provider: the one the
/// application installed with `rustls::crypto::CryptoProvider::install_default`, if any;
/// otherwise rustls picks, at the first connection, the only provider its crate features
/// compile in (and keeps it as the process default, as it does for every rustls user that
/// names none). kinde-core never installs or changes it. It compiles one in itself: aws-lc-rs
/// with the `aws-lc-rs` feature (the default), ring with `rust-crypto` (so
/// `default-features = false, features = ["rust-crypto", "redis"]` uses ring). A build that
/// enables both, or `rust-crypto` together with `http-jwks` (whose reqwest compiles in
/// aws-lc-rs), has two and no way to choose: there [`RedisStore::new`] returns
/// [`RedisConfigError::TlsProviderAmbiguous`] for a `rediss://` store unless a provider is
/// installed first, e.g.
///
/// ```no_run
/// # #[cfg(feature = "aws-lc-rs")] {
/// // Once, at the start of main (with `rustls = "0.23"` among your dependencies):
/// let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
/// # }
/// ```
///
/// Another crate of the application can also enable rustls's second provider, which kinde-core
/// cannot see; an application in that situation must install a provider anyway (its own rustls
/// users would panic too). If it does not, each `rediss://` connection attempt panics inside
/// rustls; with `panic = "unwind"` (the default) the panic is caught (by the store, or for a
/// cluster by the runtime running redis-rs's connection task, after the panic hook has printed
/// rustls's message): the operation fails with a [`StoreError::Unavailable`] that says to
/// install a provider, deliveries get 503, and once a provider is installed the store connects
/// without a restart.
///
/// # Operating Redis for it
///
/// - **Redis 7.0 or newer** (the scripts write after reading `TIME`, which needs effect
///   replication, the only mode of Redis 7).
/// - **Eviction must not drop these keys**: set `maxmemory-policy` to `noeviction` (writes then
///   fail when Redis is full, and deliveries get 503) or a `volatile-*` policy (every key here
///   has a TTL, so it can still be evicted under pressure: an evicted "handled" key lets a late
///   retry run again; an evicted claim lets a concurrent duplicate run). `allkeys-*` policies
///   silently forget events.
/// - **Memory**: one small key per event for `done_ttl` (72 h by default), i.e. roughly
///   100 bytes × the events of 72 h; with ordering on, one small hash per entity seen within
///   `done_ttl` too; with parking on, the parked events (bounded by [`ParkLimits`]).
/// - **Durability and failover**: replication is asynchronous, so a primary that fails right
///   after accepting a claim or a completion, before its replica received it, loses it; the
///   promoted replica then lets a retry of that event run its handler again. The same applies
///   to a restart without persistence (use AOF, `appendfsync everysec` or `always`). Such
///   duplicates are rare but possible, so **handlers should still be idempotent** (e.g. upsert
///   by the Kinde id). Writes the replica had acknowledged survive a failover: while the
///   cluster fails over (about `cluster-node-timeout` plus an election) deliveries get 503 and
///   are retried by Kinde, and afterwards each event is handled once (tested with a replica per
///   master, killing a master mid-stream). Slot migrations (`MOVED`/`ASK`) are followed.
/// - **Sharing**: all receivers of one application must use the same Redis (or cluster), key
///   prefix and ordering setting; keep the prefix distinct per application.
pub struct RedisStore {
    conn: LazyConn,
    prefix: String,
    command_timeout: Duration,
    fail_mode: FailMode,
    cluster: bool,
    tls: bool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("cluster", &self.cluster)
            .field("tls", &self.tls)
            .field("command_timeout", &self.command_timeout)
            .field("fail_mode", &self.fail_mode)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store with this configuration. Checks the URLs, timeouts and TLS settings (see
    /// [TLS](#tls): the certificates parse, the key matches, a trust store and a crypto
    /// provider are there); connects to nothing, so it succeeds while Redis is down
    /// (operations fail until Redis is reachable). Needs no runtime; operations need a tokio
    /// runtime.
    pub fn new(config: RedisStoreConfig) -> Result<Self, RedisConfigError> {
        let tls = tls::check(&config)?;
        Ok(Self {
            conn: LazyConn::new(&config, tls)?,
            prefix: config.key_prefix,
            command_timeout: config.command_timeout,
            fail_mode: config.fail_mode,
            cluster: config.cluster,
            tls,
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

    /// Whether this store talks TLS (`rediss://` URLs).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether Redis answers a `PING` (e.g. for a readiness probe), with the same bounds and
    /// errors as the other operations. Not needed before use.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move { ::redis::cmd("PING").query_async::<()>(&mut c).await })
            .await
    }

    /// Runs one command on the (lazily created) connection, bounded by the command timeout.
    ///
    /// A command refused at connect time was never sent, so it is tried once more: the failure
    /// has made the connection manager dial again, and a Redis that just came back then answers
    /// the first delivery instead of a stale connection error.
    ///
    /// A panic inside the Redis client (rustls panics at a connection's start when it cannot
    /// choose a crypto provider, see [TLS](RedisStore#tls)) becomes a store error, and the
    /// connection, which may be poisoned by it, is dropped for a new one.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: Fn(conn::Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let work = async {
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
        };
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                self.conn.reset();
                Err(StoreError::Unavailable(Box::new(ClientPanicked::new(
                    panic.as_ref(),
                ))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What rustls panics with when two providers are compiled in and none is installed.
    const RUSTLS_PANIC: &str = "\nCould not automatically determine the process-level \
        CryptoProvider from Rustls crate features.\nCall CryptoProvider::install_default() \
        before this point to select a provider manually, or make sure exactly one of the \
        'aws-lc-rs' and 'ring' features is enabled.\n";

    #[tokio::test]
    async fn a_panic_inside_the_client_is_a_store_error_and_the_connection_is_replaced() {
        let store = RedisStore::open("redis://127.0.0.1:1").unwrap();
        for (message, expected) in [
            (
                RUSTLS_PANIC,
                "rustls::crypto::CryptoProvider::install_default",
            ),
            (
                "something else",
                "the Redis client panicked: something else",
            ),
        ] {
            let r = store
                .run(|_conn| async move {
                    // (Always true; the `Ok` below gives the future its type.)
                    if !message.is_empty() {
                        panic!("{message}");
                    }
                    Ok::<(), RedisError>(())
                })
                .await;
            let e = r.unwrap_err();
            assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
            assert!(e.to_string().contains(expected), "{e}");
            // The connection it ran on, maybe poisoned, is gone; the next one is new.
            assert!(store.conn.current().is_none());
        }
        let (generation, _) = store.conn.get().await.unwrap();
        assert_eq!(
            generation, 3,
            "a connection per operation, none reused after a panic"
        );
    }
}
