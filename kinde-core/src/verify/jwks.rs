//! The JWKS cache: keys fetched once and reused, refetched single-flight on an unknown `kid`
//! (with a cooldown), kept stale while a refresh fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;

use super::keys::usable_keys;
use super::source::{JwksError, KeySource};

/// Tuning of the JWKS cache. Every field has a sensible default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwksConfig {
    /// How long keys stay fresh when the issuer sends no `Cache-Control: max-age`.
    pub default_ttl: Duration,
    /// Lower clamp of `max-age`.
    pub min_ttl: Duration,
    /// Upper clamp of `max-age`.
    pub max_ttl: Duration,
    /// Minimum time between two fetches triggered by unknown `kid`s or failures: a flood of
    /// forged kids causes at most one fetch per cooldown.
    pub refetch_cooldown: Duration,
    /// Most keys a JWKS may hold.
    pub max_keys: usize,
    /// Fetch timeout (connect + whole response).
    pub fetch_timeout: Duration,
    /// Largest JWKS response read, in bytes.
    pub max_response_bytes: usize,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_cooldown: Duration::from_secs(10),
            max_keys: 64,
            fetch_timeout: Duration::from_secs(5),
            max_response_bytes: 128 * 1024,
        }
    }
}

/// Why no key could be had for a `kid`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The issuer's current key set (fetched successfully) has no such `kid`. A forgery, or a
    /// key Kinde removed: 401.
    #[error("no key with this kid in the issuer's JWKS")]
    UnknownKid,
    /// The keys cannot be fetched right now and no cached key matches: 503, so Kinde retries.
    #[error("JWKS unavailable: {0}")]
    Unavailable(Arc<JwksError>),
}

#[derive(Default)]
struct Snapshot {
    /// Bumped on every fetch attempt, so tasks that waited for a fetch do not repeat it.
    generation: u64,
    keys: HashMap<String, Arc<DecodingKey>>,
    /// Keys are used without refetching until then.
    fresh_until: Option<Instant>,
    last_attempt: Option<Instant>,
    last_error: Option<Arc<JwksError>>,
}

/// The cache of the issuer's signing keys.
///
/// Reads on the hot path clone an `Arc` under a briefly held read lock; no lock is held across
/// I/O. Fetches are serialised by an async mutex (single flight).
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

enum Trigger {
    /// The cached keys passed their TTL.
    Expired,
    /// A token named a `kid` the cache does not hold.
    UnknownKid,
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

    /// The `kid`s currently cached.
    pub fn cached_kids(&self) -> Vec<String> {
        self.snap().keys.keys().cloned().collect()
    }

    fn snap(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value is sound.
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The key for `kid`: from the cache when fresh; otherwise after one (shared) fetch.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        let snap = self.snap();
        let now = Instant::now();
        let fresh = snap.fresh_until.is_some_and(|t| now < t);
        if let Some(key) = snap.keys.get(kid) {
            if fresh {
                return Ok(key.clone());
            }
            self.fetch_once(snap.generation, Trigger::Expired).await;
            // After a failed refresh the stale keys are still there: keep verifying with them.
            return self
                .snap()
                .keys
                .get(kid)
                .cloned()
                .ok_or(KeyError::UnknownKid);
        }
        self.fetch_once(snap.generation, Trigger::UnknownKid).await;
        let after = self.snap();
        match after.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None => match &after.last_error {
                Some(err) => Err(KeyError::Unavailable(err.clone())),
                None => Err(KeyError::UnknownKid),
            },
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

    /// Fetches unless another task fetched (or tried) since `seen_generation`, or the cooldown
    /// forbids it.
    async fn fetch_once(&self, seen_generation: u64, trigger: Trigger) {
        let _guard = self.fetch_lock.lock().await;
        let snap = self.snap();
        if snap.generation != seen_generation {
            return;
        }
        let now = Instant::now();
        let cooling = snap
            .last_attempt
            .is_some_and(|t| now.duration_since(t) < self.config.refetch_cooldown);
        match trigger {
            Trigger::UnknownKid if cooling => return,
            Trigger::Expired if snap.fresh_until.is_some_and(|t| now < t) => return,
            _ => {}
        }
        self.fetch_and_store().await;
    }

    /// One fetch; stores the result. Must be called with `fetch_lock` held.
    async fn fetch_and_store(&self) -> Option<Arc<JwksError>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.source.fetch().await.and_then(|fetched| {
            let keys = usable_keys(&fetched.body, self.config.max_keys)?;
            Ok((keys, fetched.max_age))
        });
        let now = Instant::now();
        let prev = self.snap();
        let (next, err) = match result {
            Ok((keys, max_age)) => {
                let ttl = max_age
                    .unwrap_or(self.config.default_ttl)
                    .clamp(self.config.min_ttl, self.config.max_ttl);
                tracing::debug!(keys = keys.len(), ttl_s = ttl.as_secs(), "JWKS fetched");
                let next = Snapshot {
                    generation: prev.generation + 1,
                    keys,
                    fresh_until: Some(now + ttl),
                    last_attempt: Some(now),
                    last_error: None,
                };
                (next, None)
            }
            Err(e) => {
                let e = Arc::new(e);
                tracing::warn!(error = %e, cached_keys = prev.keys.len(), "JWKS fetch failed; keeping cached keys");
                let next = Snapshot {
                    generation: prev.generation + 1,
                    keys: prev.keys.clone(),
                    // Retry no sooner than the cooldown; meanwhile stale keys keep working.
                    fresh_until: Some(now + self.config.refetch_cooldown),
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
