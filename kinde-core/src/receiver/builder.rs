//! The one configuration builder, with validated defaults.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::dispatch::{BoxError, HandlerMap, HandlerMapError};
use crate::event::{Event, KindeEvent, WebhookEvent};
use crate::store::{IdempotencyStore, MemoryStore, MemoryStoreConfig};
use crate::verify::{
    check_url, jwks_url, normalize_issuer, IssuerError, JwksCache, JwksConfig, JwksError, JwksPath,
    KeySource, ReplayWindow, Verifier,
};

use super::{Inner, Webhooks};

/// The path intercepted by the adapters unless configured otherwise.
pub const DEFAULT_PATH: &str = "/kinde/webhook";
/// The default body limit: 256 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// An invalid configuration, reported by [`WebhooksBuilder::build`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither an issuer nor a key source was given.
    #[error("no key source: call .issuer(\"https://<tenant>.kinde.com\") or .key_source(..)")]
    NoKeySource,
    /// The issuer or JWKS URL is invalid.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// The HTTP client for the JWKS could not be built.
    #[error("cannot build the JWKS client: {0}")]
    Jwks(#[from] JwksError),
    /// The HTTP JWKS fetcher is compiled out (`http-jwks` feature off).
    #[error("fetching keys from an issuer needs the `http-jwks` feature; use .key_source(..)")]
    HttpJwksDisabled,
    /// Two handlers for one type, or two fallbacks.
    #[error(transparent)]
    Handlers(#[from] HandlerMapError),
    /// Handled events must be remembered at least as long as a token is accepted.
    #[error("done TTL ({done_ttl:?}) must be at least the replay window ({window:?}), or a replayed token could run twice")]
    DoneTtlShorterThanWindow {
        /// Configured done TTL.
        done_ttl: Duration,
        /// Replay window's max age plus its future allowance.
        window: Duration,
    },
    /// A handler could outlive its claim and overlap its own retry.
    #[error("handler timeout ({timeout:?}) must be shorter than the processing claim TTL ({processing_ttl:?})")]
    HandlerTimeoutTooLong {
        /// Handler timeout.
        timeout: Duration,
        /// Processing claim TTL.
        processing_ttl: Duration,
    },
    /// A limit or duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The path does not start with `/`.
    #[error("webhook path `{0}` must start with `/`")]
    InvalidPath(String),
}

/// Builds [`Webhooks`]. Every setting has a default except where the keys come from.
///
/// ```
/// use kinde_core::{Webhooks, event::{Event, UserCreated}};
/// let webhooks = Webhooks::builder()
///     .issuer("acme.kinde.com")
///     .on(|e: Event<UserCreated>| async move {
///         println!("welcome {}", e.data.user.id);
///         Ok::<_, std::convert::Infallible>(())
///     })
///     .build()
///     .unwrap();
/// assert_eq!(webhooks.path(), "/kinde/webhook");
/// ```
pub struct WebhooksBuilder {
    issuer: Option<String>,
    jwks_url: Option<String>,
    jwks_path: JwksPath,
    key_source: Option<Arc<dyn KeySource>>,
    jwks: JwksConfig,
    window: ReplayWindow,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn IdempotencyStore>>,
    memory: MemoryStoreConfig,
    processing_ttl: Duration,
    done_ttl: Duration,
    handler_timeout: Duration,
    body_limit: usize,
    path: String,
    handlers: HandlerMap,
}

impl Default for WebhooksBuilder {
    fn default() -> Self {
        Self {
            issuer: None,
            jwks_url: None,
            jwks_path: JwksPath::default(),
            key_source: None,
            jwks: JwksConfig::default(),
            window: ReplayWindow::default(),
            clock: Arc::new(SystemClock),
            store: None,
            memory: MemoryStoreConfig::default(),
            processing_ttl: Duration::from_secs(120),
            done_ttl: Duration::from_secs(72 * 3600),
            handler_timeout: Duration::from_secs(60),
            body_limit: DEFAULT_BODY_LIMIT,
            path: DEFAULT_PATH.to_owned(),
            handlers: HandlerMap::new(),
        }
    }
}

impl WebhooksBuilder {
    /// The Kinde domain (`acme.kinde.com`, `https://acme.kinde.com/`, or `http://127.0.0.1:port`
    /// for a local issuer). Keys come from `{issuer}/.well-known/jwks`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Fetch keys from this URL instead of the issuer's well-known path.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Which well-known path to use (`/.well-known/jwks` by default).
    pub fn jwks_path(mut self, path: JwksPath) -> Self {
        self.jwks_path = path;
        self
    }

    /// Load keys from this source instead of an issuer URL.
    pub fn key_source(mut self, source: impl KeySource) -> Self {
        self.key_source = Some(Arc::new(source));
        self
    }

    /// JWKS cache tuning (TTL clamps, cooldown, bounds, fetch timeout).
    pub fn jwks_config(mut self, config: JwksConfig) -> Self {
        self.jwks = config;
        self
    }

    /// The replay window (default: 48 h old, 5 min future).
    pub fn replay_window(mut self, window: ReplayWindow) -> Self {
        self.window = window;
        self
    }

    /// The clock the replay window is checked against (tests inject a manual one).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The idempotency store (default: an in-memory [`MemoryStore`]).
    pub fn store(mut self, store: impl IdempotencyStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Sizing of the default in-memory store.
    pub fn memory_store(mut self, config: MemoryStoreConfig) -> Self {
        self.memory = config;
        self
    }

    /// How long a processing claim blocks other deliveries of the event (default 2 min).
    pub fn processing_ttl(mut self, ttl: Duration) -> Self {
        self.processing_ttl = ttl;
        self
    }

    /// How long handled events are remembered (default 72 h; at least the replay window).
    pub fn done_ttl(mut self, ttl: Duration) -> Self {
        self.done_ttl = ttl;
        self
    }

    /// How long a handler may run (default 60 s; shorter than the processing TTL).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// The largest body accepted (default 256 KiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The path adapters intercept (default `/kinde/webhook`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Registers the handler for `T` (one per type).
    pub fn on<T, F, Fut, E>(mut self, handler: F) -> Self
    where
        T: KindeEvent,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.handlers.on(handler);
        self
    }

    /// Registers the handler for a type string (any type, documented or not).
    pub fn on_type<F, Fut, E>(mut self, event_type: impl Into<String>, handler: F) -> Self
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.handlers.on_type(event_type, handler);
        self
    }

    /// Registers the handler for every type without its own.
    pub fn fallback<F, Fut, E>(mut self, handler: F) -> Self
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.handlers.fallback(handler);
        self
    }

    fn key_source_or_http(&mut self) -> Result<Arc<dyn KeySource>, ConfigError> {
        if let Some(source) = self.key_source.take() {
            return Ok(source);
        }
        let url = match (&self.jwks_url, &self.issuer) {
            (Some(url), _) => check_url(url)?,
            (None, Some(issuer)) => jwks_url(&normalize_issuer(issuer)?, self.jwks_path),
            (None, None) => return Err(ConfigError::NoKeySource),
        };
        #[cfg(feature = "http-jwks")]
        {
            let source = crate::verify::HttpKeySource::new(
                url,
                self.jwks.fetch_timeout,
                self.jwks.max_response_bytes,
            )?;
            Ok(Arc::new(source))
        }
        #[cfg(not(feature = "http-jwks"))]
        {
            let _ = url;
            Err(ConfigError::HttpJwksDisabled)
        }
    }

    /// Validates the configuration and builds the receiver.
    pub fn build(mut self) -> Result<Webhooks, ConfigError> {
        self.handlers.validate()?;
        for (value, name) in [
            (self.body_limit, "body limit"),
            (self.memory.capacity, "memory store capacity"),
            (self.jwks.max_keys, "JWKS max keys"),
            (self.jwks.max_response_bytes, "JWKS max response bytes"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        for (value, name) in [
            (self.processing_ttl, "processing TTL"),
            (self.handler_timeout, "handler timeout"),
            (self.jwks.fetch_timeout, "JWKS fetch timeout"),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::InvalidPath(self.path));
        }
        let window = self.window.max_age + self.window.max_future;
        if self.done_ttl < window {
            return Err(ConfigError::DoneTtlShorterThanWindow {
                done_ttl: self.done_ttl,
                window,
            });
        }
        if self.handler_timeout >= self.processing_ttl {
            return Err(ConfigError::HandlerTimeoutTooLong {
                timeout: self.handler_timeout,
                processing_ttl: self.processing_ttl,
            });
        }
        let source = self.key_source_or_http()?;
        let jwks = Arc::new(JwksCache::new(source, self.jwks.clone()));
        let store = self
            .store
            .take()
            .unwrap_or_else(|| Arc::new(MemoryStore::new(self.memory.clone())));
        Ok(Webhooks {
            inner: Arc::new(Inner {
                verifier: Verifier::new(jwks, self.window, self.clock),
                store,
                handlers: self.handlers,
                processing_ttl: self.processing_ttl,
                done_ttl: self.done_ttl,
                handler_timeout: self.handler_timeout,
                body_limit: self.body_limit,
                path: self.path,
            }),
        })
    }
}
