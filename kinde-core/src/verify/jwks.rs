//! The JWKS cache: keys fetched once (each parsed once) and reused, refetched single-flight on
//! an unknown `kid` (with a cooldown), kept stale while a refresh fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::crypto::VerifyingKey;
use super::keys::{usable_keys, KeySet, Lookup};
use super::source::{JwksError, KeySource};

/// Tuning of the JWKS cache. Every setting has a sensible default; how keys are fetched (the
/// HTTP timeout and size bound) belongs to the key source ([`HttpKeySource::builder`](super::HttpKeySource)).
///
/// ```
/// use std::time::Duration;
/// use kinde_core::verify::JwksConfig;
/// let config = JwksConfig::default()
///     .refetch_cooldown(Duration::from_secs(30))
///     .min_ttl(Duration::from_secs(60))
///     .max_ttl(Duration::from_secs(3600));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct JwksConfig {
    pub(crate) default_ttl: Duration,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) refetch_cooldown: Duration,
    pub(crate) max_keys: usize,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_cooldown: Duration::from_secs(10),
            max_keys: 64,
        }
    }
}

impl JwksConfig {
    /// How long keys stay fresh when the issuer sends no `Cache-Control: max-age` (default
    /// 10 min).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The lower clamp of `max-age` (default 30 s).
    pub fn min_ttl(mut self, ttl: Duration) -> Self {
        self.min_ttl = ttl;
        self
    }

    /// The upper clamp of `max-age` (default 24 h).
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// The shortest time between two fetches triggered by unknown `kid`s or failures (default
    /// 10 s): a flood of forged kids causes at most one fetch per cooldown.
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.refetch_cooldown = cooldown;
        self
    }

    /// The most keys a JWKS may hold (default 64).
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }
}

/// Why no key could be had for a `kid`. Each becomes the [`VerifyError`](super::VerifyError) of
/// the same name, answered as the status table on [`Outcome`](crate::Outcome) says.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No usable key with this `kid`: the issuer's key set, fetched after the delivery arrived,
    /// does not list it, or lists it with a key we refuse (`use: enc`, `key_ops` without
    /// `verify`, another `alg`, a modulus or exponent out of range, no `n`/`e`). A forgery, or
    /// a key Kinde removed.
    #[error("no usable key with this kid in the issuer's JWKS")]
    UnknownKid,
    /// The `kid` is not in the cached key set, which is older than the delivery, and the
    /// refetch cooldown forbids looking again now: we cannot tell a forgery from a key Kinde
    /// just published, so the delivery is to be retried (with `Retry-After`).
    #[error("unknown kid, and the JWKS refetch cooldown has {retry_after:?} to run")]
    RefetchThrottled {
        /// What is left of the cooldown.
        retry_after: Duration,
    },
    /// The keys cannot be fetched right now and no cached key matches: Kinde is to retry.
    #[error("JWKS unavailable: {0}")]
    Unavailable(Arc<JwksError>),
}

#[derive(Default)]
struct Snapshot {
    /// Bumped on every fetch attempt, so tasks that waited for a fetch do not repeat it.
    generation: u64,
    keys: Arc<KeySet>,
    /// Keys are used without refetching until then.
    fresh_until: Option<Instant>,
    /// When the fetch that produced `keys` started: a key set fetched after a delivery arrived
    /// is the issuer's word on that delivery's `kid`.
    fetched_at: Option<Instant>,
    /// When the last fetch attempt ended (the refetch cooldown runs from there).
    last_attempt: Option<Instant>,
    last_error: Option<Arc<JwksError>>,
}

impl Snapshot {
    fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|t| now < t)
    }

    /// Whether the key set is the issuer's answer for a delivery that arrived at `arrived`.
    fn fetched_since(&self, arrived: Instant) -> bool {
        self.fetched_at.is_some_and(|t| t >= arrived)
    }

    fn cooldown_left(&self, now: Instant, cooldown: Duration) -> Option<Duration> {
        let end = later(self.last_attempt?, cooldown);
        (now < end).then(|| end - now)
    }
}

/// `t + d`, saturating at ~136 years for durations configured as "forever".
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(u64::from(u32::MAX)))
}

/// The cache of the issuer's signing keys.
///
/// Reads on the hot path clone an `Arc` under a briefly held read lock; no lock is held across
/// I/O. Fetches are serialised by an async mutex (single flight).
///
/// For a `kid` it does not hold, the cache answers honestly: [`KeyError::UnknownKid`] only when
/// a key set fetched after the delivery arrived lacks it (its own refetch, or one it waited on),
/// [`KeyError::RefetchThrottled`] when the cooldown forbids that refetch, so a stranger's random
/// `kid` cannot turn Kinde's first deliveries under a new key into 401s.
pub struct JwksCache {
    source: Arc<dyn KeySource>,
    config: JwksConfig,
    snapshot: RwLock<Arc<Snapshot>>,
    fetch_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("config", &self.config)
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// An empty cache over a key source; nothing is fetched until the first key is needed (or
    /// [`JwksCache::refresh`] is called).
    pub fn new(source: Arc<dyn KeySource>, config: JwksConfig) -> Self {
        Self {
            source,
            config,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many fetches the cache has started (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The `kid`s of the usable keys currently cached.
    pub fn cached_kids(&self) -> Vec<String> {
        self.snap().keys.keys.keys().cloned().collect()
    }

    /// Why the last fetch failed; `None` when it succeeded or none was made yet. Cached keys
    /// keep verifying meanwhile.
    pub fn last_error(&self) -> Option<Arc<JwksError>> {
        self.snap().last_error.clone()
    }

    fn snap(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value is sound.
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The key for `kid`, for a delivery arriving now: from the cache when fresh; otherwise
    /// after one (shared) fetch. See [`KeyError`] for what each refusal means.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, KeyError> {
        self.key_for(kid, Instant::now()).await
    }

    /// The hot path of [`JwksCache::key`], without awaiting: the key when the cached set is
    /// fresh at `arrived` and lists it. `None` means: ask [`JwksCache::key_for`].
    pub(crate) fn fresh_key(&self, kid: &str, arrived: Instant) -> Option<Arc<VerifyingKey>> {
        let snap = self.snap();
        if !snap.is_fresh(arrived) {
            return None;
        }
        match snap.keys.lookup(kid) {
            Lookup::Found(key) => Some(key),
            Lookup::Refused | Lookup::Missing => None,
        }
    }

    /// [`JwksCache::key`] for a delivery that arrived at `arrived`.
    pub(crate) async fn key_for(
        &self,
        kid: &str,
        arrived: Instant,
    ) -> Result<Arc<VerifyingKey>, KeyError> {
        let mut snap = self.snap();
        if !snap.is_fresh(arrived) {
            self.refresh_expired(snap.generation).await;
            snap = self.snap();
        }
        // After a failed refresh the stale keys are still there: keep verifying with them.
        match snap.keys.lookup(kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::Refused => Err(KeyError::UnknownKid),
            Lookup::Missing => self.key_not_cached(kid, arrived).await,
        }
    }

    /// Fetches the key set now (e.g. to warm the cache at start-up), whatever its freshness.
    pub async fn refresh(&self) -> Result<(), Arc<JwksError>> {
        let _guard = self.fetch_lock.lock().await;
        match self.fetch_and_store().await {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Refetches expired keys unless another task fetched (or tried) since `seen_generation`.
    async fn refresh_expired(&self, seen_generation: u64) {
        let _guard = self.fetch_lock.lock().await;
        let snap = self.snap();
        if snap.generation != seen_generation || snap.is_fresh(Instant::now()) {
            return;
        }
        self.fetch_and_store().await;
    }

    /// A `kid` the cached set does not list: the answer needs a key set fetched after
    /// `arrived`, which only a refetch outside the cooldown can give.
    async fn key_not_cached(
        &self,
        kid: &str,
        arrived: Instant,
    ) -> Result<Arc<VerifyingKey>, KeyError> {
        let _guard = self.fetch_lock.lock().await;
        let snap = self.snap();
        match snap.keys.lookup(kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Refused => return Err(KeyError::UnknownKid),
            Lookup::Missing => {}
        }
        if snap.fetched_at.is_some() && (snap.fetched_since(arrived) || self.source.is_static()) {
            return Err(KeyError::UnknownKid);
        }
        if let Some(left) = snap.cooldown_left(Instant::now(), self.config.refetch_cooldown) {
            return Err(match &snap.last_error {
                Some(err) => KeyError::Unavailable(err.clone()),
                None => KeyError::RefetchThrottled { retry_after: left },
            });
        }
        self.fetch_and_store().await;
        let after = self.snap();
        match after.keys.lookup(kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::Refused => Err(KeyError::UnknownKid),
            Lookup::Missing => match &after.last_error {
                Some(err) => Err(KeyError::Unavailable(err.clone())),
                None => Err(KeyError::UnknownKid),
            },
        }
    }

    /// One fetch; stores the result. Must be called with `fetch_lock` held.
    async fn fetch_and_store(&self) -> Option<Arc<JwksError>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.source.fetch().await.and_then(|fetched| {
            let keys = usable_keys(&fetched.body, self.config.max_keys)?;
            Ok((keys, fetched.max_age))
        });
        crate::metrics::jwks_fetch(result.is_ok());
        let now = Instant::now();
        let prev = self.snap();
        let (next, err) = match result {
            Ok((keys, max_age)) => {
                let ttl = max_age
                    .unwrap_or(self.config.default_ttl)
                    .clamp(self.config.min_ttl, self.config.max_ttl);
                tracing::debug!(
                    keys = keys.keys.len(),
                    refused = keys.refused.len(),
                    ttl_s = ttl.as_secs(),
                    "JWKS fetched"
                );
                let next = Snapshot {
                    generation: prev.generation + 1,
                    keys: Arc::new(keys),
                    fresh_until: Some(later(now, ttl)),
                    fetched_at: Some(started),
                    last_attempt: Some(now),
                    last_error: None,
                };
                (next, None)
            }
            Err(e) => {
                let e = Arc::new(e);
                tracing::warn!(error = %e, cached_keys = prev.keys.keys.len(), "JWKS fetch failed; keeping cached keys");
                let next = Snapshot {
                    generation: prev.generation + 1,
                    keys: prev.keys.clone(),
                    // Retry no sooner than the cooldown; meanwhile stale keys keep working.
                    fresh_until: Some(later(now, self.config.refetch_cooldown)),
                    fetched_at: prev.fetched_at,
                    last_attempt: Some(now),
                    last_error: Some(e.clone()),
                };
                (next, Some(e))
            }
        };
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestIssuer;
    use crate::verify::{FetchedJwks, StaticKeySource};

    /// A static document, not declared static: missing kids go through the cooldown.
    struct Refetchable(StaticKeySource);

    #[async_trait::async_trait]
    impl KeySource for Refetchable {
        async fn fetch(&self) -> Result<FetchedJwks, JwksError> {
            self.0.fetch().await
        }
    }

    #[tokio::test]
    async fn durations_configured_as_forever_do_not_overflow() {
        let cfg = JwksConfig {
            refetch_cooldown: Duration::MAX,
            default_ttl: Duration::MAX,
            max_ttl: Duration::MAX,
            ..JwksConfig::default()
        };
        let jwks = StaticKeySource::new(TestIssuer::new().jwks().to_string());
        let cache = JwksCache::new(Arc::new(Refetchable(jwks)), cfg);
        assert!(cache.key("test-primary").await.is_ok());
        assert!(matches!(
            cache.key("elsewhere").await,
            Err(KeyError::RefetchThrottled { retry_after }) if retry_after > Duration::from_secs(1 << 31)
        ));
        assert_eq!(cache.fetch_count(), 1);
    }
}
