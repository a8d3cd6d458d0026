//! Configuration of the Redis store: where Redis is, TLS, key prefix, timeouts, fail mode.

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
    /// cannot answer is treated as new ([`Claim::StartProcessing`](crate::store::Claim), with
    /// no previous applied event) with a token that `complete`, `release` and `fail` ignore
    /// (they return [`Fenced::Applied`](crate::store::Fenced::Applied) or, for `fail`,
    /// [`Failed::Released`](crate::store::Failed::Released) with 0 attempts, without touching
    /// Redis: there is nothing to settle), and a warning is logged each time.
    ///
    /// Every retry and duplicate delivered meanwhile runs its handler again (concurrent ones
    /// too), and ordering is off: an older event of an entity is applied like any other. So
    /// choose this only when handlers are idempotent and availability matters more than
    /// exactly-once and ordering. **Parking needs Redis**: a failure of a delivery handled
    /// while Redis is down is not counted (it is answered 500, and Kinde retries it), and
    /// listing, replaying and unparking parked events fail with the store error. Errors of
    /// `complete`, `release` and `fail` with a real token are still reported.
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
/// // TLS: a `rediss://` URL. The platform's trust store is used unless a CA bundle is given;
/// // a client certificate is needed only where the server asks for one (mutual TLS).
/// # let (ca, cert, key) = (Vec::<u8>::new(), Vec::<u8>::new(), Vec::<u8>::new());
/// let tls = RedisStoreConfig::new("rediss://redis.internal:6380")
///     .tls_ca_pem(ca) // e.g. std::fs::read("/etc/redis/ca.crt")?
///     .tls_client_cert_pem(cert, key);
/// # let _ = (single, cluster, tls);
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisStoreConfig {
    pub(super) urls: Vec<String>,
    pub(super) cluster: bool,
    pub(super) key_prefix: String,
    pub(super) command_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) fail_mode: FailMode,
    pub(super) tls: TlsSettings,
}

/// The TLS material given to a [`RedisStoreConfig`], all PEM.
#[derive(Clone, Default)]
pub(super) struct TlsSettings {
    /// The CA certificates to trust instead of the platform's.
    pub(super) ca_pem: Option<Vec<u8>>,
    /// The client certificate chain and its private key.
    pub(super) client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsSettings {
    pub(super) fn is_set(&self) -> bool {
        self.ca_pem.is_some() || self.client_pem.is_some()
    }
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
            tls: TlsSettings::default(),
        }
    }

    /// A single Redis server (or a primary behind a stable address, e.g. a managed endpoint),
    /// as a `redis://[user:password@]host:port[/db]` URL, or `rediss://…` for TLS (see
    /// [`tls_ca_pem`](Self::tls_ca_pem)).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_urls(vec![url.into()], false)
    }

    /// A Redis Cluster, from one or more of its nodes' URLs (the rest is discovered). Either all
    /// `redis://` or all `rediss://` (TLS, also used for the nodes discovered).
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

    /// For `rediss://` URLs: trust exactly the CA certificates in `pem` (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks, e.g. the contents of the server's `tls-ca-cert-file`
    /// or a managed service's CA bundle) instead of the platform's trust store.
    ///
    /// Without it, the server's certificate must chain to a CA of the platform's trust store,
    /// loaded with [`rustls-native-certs`](https://docs.rs/rustls-native-certs) (which honours
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`). Either way the certificate must name the host of the
    /// URL (a DNS name, or an IP address in its subjectAltName).
    ///
    /// Checked by [`RedisStore::new`](super::RedisStore::new): a bundle holding no certificate
    /// is refused, as is any TLS setting with a `redis://` URL.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca_pem = Some(pem.into());
        self
    }

    /// For `rediss://` URLs: present this client certificate (mutual TLS), for servers that
    /// require one (`tls-auth-clients yes`, the default of a Redis `tls-port`). `cert_chain_pem`
    /// holds the certificate first, then any intermediates; `key_pem` its private key (PKCS#8,
    /// PKCS#1 or SEC1 PEM, unencrypted).
    ///
    /// Checked by [`RedisStore::new`](super::RedisStore::new): both must parse and the key
    /// must belong to the certificate. Neither is ever printed (`Debug` shows only that one is
    /// set).
    pub fn tls_client_cert_pem(
        mut self,
        cert_chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client_pem = Some((cert_chain_pem.into(), key_pem.into()));
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
            .field(
                "tls_ca",
                &match &self.tls.ca_pem {
                    Some(pem) => format!("<{} bytes of PEM>", pem.len()),
                    None => "<the platform's trust store>".to_owned(),
                },
            )
            .field(
                "tls_client_cert",
                &self.tls.client_pem.as_ref().map(|_| "<set>"),
            )
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
    /// TLS settings were given, but a URL is `redis://` (plain TCP) rather than `rediss://`.
    #[error("TLS settings were given, but Redis URL #{index} is not rediss://")]
    TlsNeedsRediss {
        /// Its position in the list, from 0.
        index: usize,
    },
    /// A `rediss://` URL asks for `#insecure` (no certificate check), which is not supported:
    /// give the server's CA with [`RedisStoreConfig::tls_ca_pem`] instead.
    #[error(
        "Redis URL #{index} asks for #insecure (no certificate check), which RedisStore does \
         not support; pass the server's CA with RedisStoreConfig::tls_ca_pem instead"
    )]
    InsecureTls {
        /// Its position in the list, from 0.
        index: usize,
    },
    /// A CA bundle, client certificate or client key does not parse, or the key does not
    /// belong to the certificate.
    #[error("invalid TLS {what}: {source}")]
    InvalidTls {
        /// Which of them: `"CA bundle"`, `"client certificate"`, `"client key"`,
        /// `"client certificate and key"`.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The platform's trust store could not be loaded (or holds no certificate while no CA
    /// bundle is configured), so no `rediss://` connection could succeed.
    #[error(
        "the platform's trusted CA certificates could not be loaded for rediss:// ({source}); \
         check SSL_CERT_FILE / SSL_CERT_DIR, or pass the server's CA with \
         RedisStoreConfig::tls_ca_pem"
    )]
    PlatformTrustStore {
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `rediss://` needs rustls's process-level crypto provider, and this build compiles in two
    /// (aws-lc-rs and ring) while none is installed, so rustls cannot choose one and would
    /// panic at the first connection. Install one once at start-up, before building the store:
    /// `rustls::crypto::aws_lc_rs::default_provider().install_default()` (or `ring`'s).
    #[error(
        "rediss:// needs a rustls crypto provider, and this build enables two (aws-lc-rs and \
         ring) without one installed: call \
         rustls::crypto::CryptoProvider::install_default (e.g. \
         rustls::crypto::aws_lc_rs::default_provider().install_default()) once at start-up, \
         before RedisStore::new"
    )]
    TlsProviderAmbiguous,
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
    fn tls_material_stays_out_of_debug_output() {
        let c = RedisStoreConfig::new("rediss://redis.internal:6380")
            .tls_ca_pem("-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n")
            .tls_client_cert_pem("CERT-BYTES", "KEY-BYTES");
        let s = format!("{c:?}");
        assert!(!s.contains("CERT-BYTES") && !s.contains("KEY-BYTES") && !s.contains("Q0E="));
        assert!(s.contains("bytes of PEM") && s.contains("<set>"), "{s}");
        let plain = format!(
            "{:?}",
            RedisStoreConfig::new("rediss://redis.internal:6380")
        );
        assert!(plain.contains("platform's trust store"), "{plain}");
    }

    #[test]
    fn several_urls_mean_a_cluster() {
        assert!(!RedisStoreConfig::from_urls(["redis://a:1"]).cluster);
        assert!(RedisStoreConfig::from_urls(["redis://a:1", "redis://b:1"]).cluster);
        assert!(RedisStoreConfig::cluster(["redis://a:1"]).cluster);
    }
}
