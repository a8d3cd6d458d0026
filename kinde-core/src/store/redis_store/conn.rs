//! The lazily built connection: nothing is dialled until the first operation, a failed attempt
//! is retried by the next one, and every wait is bounded.

use std::sync::Mutex;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use tokio::time::Instant;

use super::config::{RedisConfigError, RedisStoreConfig};
use super::tls;
use crate::store::StoreError;

/// A connection to a single server (reconnecting by itself) or to a cluster.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

enum Client {
    Single(::redis::Client, ConnectionManagerConfig),
    Cluster(ClusterClient),
}

/// Creates the connection on first use and keeps it; drops it on errors a new connection may
/// cure (the connection manager already redials by itself after I/O errors).
pub(super) struct LazyConn {
    client: Client,
    /// The current connection and its generation.
    current: Mutex<Option<(u64, Conn)>>,
    /// Single flight for creating a connection.
    connecting: tokio::sync::Mutex<u64>,
    connect_timeout: Duration,
    /// Whether the connections use TLS.
    tls: bool,
}

impl LazyConn {
    /// Parses the URLs; connects to nothing.
    pub(super) fn new(config: &RedisStoreConfig, tls: bool) -> Result<Self, RedisConfigError> {
        if config.urls.is_empty() {
            return Err(RedisConfigError::NoUrl);
        }
        for (timeout, name) in [
            (config.command_timeout, "command timeout"),
            (config.connect_timeout, "connect timeout"),
        ] {
            if timeout.is_zero() {
                return Err(RedisConfigError::ZeroTimeout(name));
            }
        }
        let invalid = |index: usize| {
            move |e: RedisError| RedisConfigError::InvalidUrl {
                index,
                source: Box::new(e),
            }
        };
        // Each attempt to dial is bounded; retries are left to the next operation, so a
        // delivery never sits in a backoff loop while Redis is down.
        let client = if config.cluster {
            for (i, url) in config.urls.iter().enumerate() {
                ::redis::Client::open(url.as_str()).map_err(invalid(i))?;
            }
            let mut builder = ClusterClientBuilder::new(config.urls.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout)
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(200);
            if let Some(certificates) = tls::certificates(&config.tls) {
                builder = builder.certs(certificates);
            }
            Client::Cluster(builder.build().map_err(invalid(0))?)
        } else {
            if config.urls.len() > 1 {
                return Err(RedisConfigError::SeveralUrls(config.urls.len()));
            }
            let url = config.urls[0].as_str();
            let client = match tls::certificates(&config.tls) {
                Some(certificates) => ::redis::Client::build_with_tls(url, certificates),
                None => ::redis::Client::open(url),
            }
            .map_err(invalid(0))?;
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.command_timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_millis(200));
            Client::Single(client, manager)
        };
        Ok(Self {
            client,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(0),
            connect_timeout: config.connect_timeout,
            tls,
        })
    }

    pub(super) fn current(&self) -> Option<(u64, Conn)> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The connection, created if need be (at most the connect timeout).
    pub(super) async fn get(&self) -> Result<(u64, Conn), StoreError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let deadline = Instant::now() + self.connect_timeout;
        let created = tokio::time::timeout_at(deadline, async {
            let mut generation = self.connecting.lock().await;
            if let Some(c) = self.current() {
                return Ok(c);
            }
            let conn = match &self.client {
                // Lazy: dials on the first command, then redials by itself when the link drops.
                Client::Single(client, config) => Conn::Single(
                    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                        .map_err(unavailable)?,
                ),
                Client::Cluster(client) => {
                    Conn::Cluster(client.get_async_connection().await.map_err(|e| {
                        if self.tls && rustls::crypto::CryptoProvider::get_default().is_none() {
                            // The cluster client connects in tasks of its own: a panic in
                            // rustls there shows only as a dropped task. Still no provider
                            // installed after an attempt to connect is the tell.
                            StoreError::Unavailable(Box::new(NoProvider(e)))
                        } else {
                            from_redis(e, self.connect_timeout)
                        }
                    })?)
                }
            };
            *generation += 1;
            let entry = (*generation, conn);
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(entry.clone());
            Ok(entry)
        })
        .await;
        created.unwrap_or(Err(StoreError::Timeout(self.connect_timeout)))
    }

    /// Forgets the connection, whatever it is (after it panicked: it may be poisoned).
    pub(super) fn reset(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Called with a failed command's error: forgets the connection when a new one may help.
    pub(super) fn failed(&self, generation: u64, e: &RedisError) {
        let renew = matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::InvalidClientConfig
                | ErrorKind::Server(ServerErrorKind::ReadOnly)
        );
        if renew {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if current.as_ref().is_some_and(|(g, _)| *g == generation) {
                *current = None;
            }
        }
    }
}

pub(super) fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// A Redis error as a store error: I/O time-outs become [`StoreError::Timeout`].
pub(super) fn from_redis(e: RedisError, timeout: Duration) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout(timeout)
    } else {
        unavailable(e)
    }
}

/// A TLS cluster connection failed while no rustls provider is installed.
#[derive(Debug)]
struct NoProvider(RedisError);

impl std::fmt::Display for NoProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (and no rustls crypto provider is installed: if this program compiles in two, \
             rustls cannot choose one and panics when connecting; call \
             rustls::crypto::CryptoProvider::install_default once at start-up)",
            self.0
        )
    }
}

impl std::error::Error for NoProvider {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The Redis client panicked; the panic's message, and what to do when it is rustls's.
#[derive(Debug)]
pub(super) struct ClientPanicked(String);

impl ClientPanicked {
    pub(super) fn new(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Self(message.trim().to_owned())
    }
}

impl std::fmt::Display for ClientPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.contains("CryptoProvider") {
            write!(
                f,
                "rustls could not choose a crypto provider for rediss:// (two are compiled into \
                 this program and none is installed): call \
                 rustls::crypto::CryptoProvider::install_default once at start-up. rustls said: {}",
                self.0
            )
        } else {
            write!(f, "the Redis client panicked: {}", self.0)
        }
    }
}

impl std::error::Error for ClientPanicked {}
