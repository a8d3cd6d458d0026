//! Configuration of the Redis store: where Redis is, key prefix, timeouts, fail mode.

use std::fmt;
use std::time::Duration;

/// What [`RedisStore`](super::RedisStore) does when Redis cannot answer a claim (down,
/// unreachable, timed out, or an error reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailMode {
    /// The default: the claim fails with a [`StoreError`](crate::store::StoreError), the
    /// delivery is answered `503 store_unavailable` and Kinde retries it later. Nothing is lost
    /// and nothing runs twice; deliveries simply wait until Redis is back.
    #[default]
    Closed,
    /// Keep handling deliveries while Redis is down, without deduplication: a claim Redis
    /// cannot answer is treated as new ([`Claim::StartProcessing`](crate::store::Claim)) with a
    /// token that `complete` and `release` ignore (they return
    /// [`Fenced::Applied`](crate::store::Fenced::Applied) without touching Redis: there is
    /// nothing to settle), and a warning is logged each time.
    ///
    /// Every retry and duplicate delivered meanwhile runs its handler again (concurrent ones
    /// too), so choose this only when handlers are idempotent and availability matters more
    /// than exactly-once. Invalid event ids are still rejected, and errors of `complete` and
    /// `release` with a real token are still reported.
    Open,
}

/// Where and how [`RedisStore`](super::RedisStore) talks to Redis.
///
/// The claim TTLs are not here: they come with each call, from the receiver's
/// `processing_ttl` and `done_ttl` (the same settings as for the in-memory store).
///
/// ```
/// use std::time::Duration;
/// use kinde_core::store::{FailMode, RedisStoreConfig};
///
/// let single = RedisStoreConfig::new("redis://127.0.0.1:6379")
///     .key_prefix("acme:kinde:")
///     .command_timeout(Duration::from_millis(500));
/// let cluster = RedisStoreConfig::cluster(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
///     .fail_mode(FailMode::Closed);
/// # let _ = (single, cluster);
/// ```
#[derive(Clone)]
pub struct RedisStoreConfig {
    pub(super) urls: Vec<String>,
    pub(super) cluster: bool,
    pub(super) key_prefix: String,
    pub(super) command_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) fail_mode: FailMode,
}

impl RedisStoreConfig {
    /// The default key prefix: keys are `kinde:webhook:<event_id>`.
    pub const DEFAULT_KEY_PREFIX: &'static str = "kinde:webhook:";
    /// The default bound on each command (1 s).
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default bound on establishing a connection (1 s).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

    fn with_urls(urls: Vec<String>, cluster: bool) -> Self {
        Self {
            urls,
            cluster,
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            fail_mode: FailMode::default(),
        }
    }

    /// A single Redis server (or a primary behind a stable address, e.g. a managed endpoint),
    /// as a `redis://[user:password@]host:port[/db]` or `rediss://` URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_urls(vec![url.into()], false)
    }

    /// A Redis Cluster, from one or more of its nodes' URLs (the rest is discovered).
    pub fn cluster<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_urls(urls.into_iter().map(Into::into).collect(), true)
    }

    /// One URL means a single server, several mean a cluster: handy for a comma-separated
    /// setting such as `REDIS_URLS`.
    pub fn from_urls<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        let cluster = urls.len() > 1;
        Self::with_urls(urls, cluster)
    }

    /// Sets the prefix of every key (default [`Self::DEFAULT_KEY_PREFIX`]). Receivers sharing
    /// deduplication must use the same prefix; different applications on one Redis should use
    /// different ones. On a cluster, keep `{`/`}` out of it, or every key lands in one slot.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the bound on each command (default 1 s). A command that takes longer fails with
    /// [`StoreError::Timeout`](crate::store::StoreError::Timeout), so a slow or unreachable
    /// Redis costs a delivery at most this long (plus the connect timeout, while connecting).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets the bound on establishing a connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets what happens when Redis cannot answer a claim (default [`FailMode::Closed`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact(u)).collect();
        f.debug_struct("RedisStoreConfig")
            .field("urls", &urls)
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("fail_mode", &self.fail_mode)
            .finish()
    }
}

/// The URL with its password (if any) masked, for logs and `Debug`.
pub(super) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// A [`RedisStoreConfig`] that cannot work. Nothing is connected to find this out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// No URL was given.
    #[error("no Redis URL given")]
    NoUrl,
    /// A URL does not parse (the URL itself is left out: it may hold a password).
    #[error("invalid Redis URL (#{index}): {source}")]
    InvalidUrl {
        /// Its position in the list, from 0.
        index: usize,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Several URLs were given for a single server.
    #[error("{0} URLs given for a single Redis server; use RedisStoreConfig::cluster")]
    SeveralUrls(usize),
    /// A timeout is zero.
    #[error("the Redis {0} must not be zero")]
    ZeroTimeout(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let c = RedisStoreConfig::new("redis://user:s3cret@redis.internal:6380/2");
        let s = format!("{c:?}");
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("redis.internal:6380"), "{s}");
    }

    #[test]
    fn several_urls_mean_a_cluster() {
        assert!(!RedisStoreConfig::from_urls(["redis://a:1"]).cluster);
        assert!(RedisStoreConfig::from_urls(["redis://a:1", "redis://b:1"]).cluster);
        assert!(RedisStoreConfig::cluster(["redis://a:1"]).cluster);
    }
}
