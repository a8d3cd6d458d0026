//! The one configuration builder, with validated defaults.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::event::KindeEvent;
use crate::handler::{Handler, HandlerMap};
use crate::store::{IdempotencyStore, MemoryStoreConfig, ParkLimits};
use crate::verify::{JwksConfig, JwksPath, KeySource, ReplayWindow};

use super::EntityOrdering;

/// The path intercepted by the adapters unless configured otherwise.
pub const DEFAULT_PATH: &str = "/kinde/webhook";
/// The default body limit: 256 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;
/// The default body deadline: 10 s from the end of the request head to the last body byte.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on deliveries in flight (bodies being read or handled) at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Builds [`Webhooks`](crate::Webhooks). Every setting has a default except where the keys come from.
///
/// `S` is the application state handlers can take ([`WebhooksBuilder::state`]); `()` until it
/// is given.
///
/// | method | default | meaning |
/// |---|---|---|
/// | [`issuer`](Self::issuer) | — (or [`key_source`](Self::key_source)) | `acme.kinde.com`, `https://acme.kinde.com/`, or `http://127.0.0.1:port` (plain http only for loopback) |
/// | [`jwks_path`](Self::jwks_path) / [`jwks_url`](Self::jwks_url) | `/.well-known/jwks` | where the keys are |
/// | [`key_source`](Self::key_source) | HTTPS (reqwest + rustls), 5 s timeout, 128 KiB bound | `HttpKeySource::builder(url)` to tune the fetch, [`StaticKeySource`](crate::verify::StaticKeySource) for pinned keys, or your own [`KeySource`] (not beside `issuer`: a build error) |
/// | [`jwks_config`](Self::jwks_config) | TTL 10 min (from `max-age`, clamped 30 s – 24 h), refetch cooldown 10 s, ≤ 64 keys | the key cache |
/// | [`replay_window`](Self::replay_window) | 48 h old, 5 min ahead | checked on the signed `timestamp` |
/// | [`done_ttl`](Self::done_ttl) | 72 h | how long handled ids are remembered (≥ the replay window: checked) |
/// | [`processing_ttl`](Self::processing_ttl) | 2 min | how long a claim blocks other deliveries of the event |
/// | [`handler_timeout`](Self::handler_timeout) | 60 s | longer runs fail with 500 (< `processing_ttl`: checked) |
/// | [`body_limit`](Self::body_limit) | 256 KiB | larger bodies get 413, never read past the limit |
/// | [`body_timeout`](Self::body_timeout) | 10 s | from the end of the request head to the last body byte (408) |
/// | [`max_in_flight`](Self::max_in_flight) | 1 024 | deliveries read or handled at once (503 past it) |
/// | [`path`](Self::path) | `/kinde/webhook` | the path the path-intercepting adapters answer (exact match) |
/// | [`store`](Self::store) / [`memory_store`](Self::memory_store) | in-memory, 1 000 000 entries | the idempotency store |
/// | [`clock`](Self::clock) | system clock | inject `testing::ManualClock` in tests |
/// | [`state`](Self::state) | `()` | what handlers taking [`State`](crate::State) get |
/// | [`ordering`](Self::ordering) | off | latest event per entity wins; older ones `200 superseded` |
/// | [`park_after`](Self::park_after) | off | park an event after this many failures (`200 parked`) |
/// | [`park_limits`](Self::park_limits) | 10 000 events or 64 MiB | bounds of the parked set |
///
/// ```
/// use kinde_core::{Webhooks, event::{Event, UserCreated}};
/// let webhooks = Webhooks::builder()
///     .issuer("acme.kinde.com")
///     .on(|e: Event<UserCreated>| async move { println!("welcome {}", e.data.user.id) })
///     .build()
///     .unwrap();
/// assert_eq!(webhooks.path(), "/kinde/webhook");
/// ```
#[must_use = "a builder does nothing until `.build()`"]
pub struct WebhooksBuilder<S = ()> {
    pub(super) issuer: Option<String>,
    pub(super) jwks_url: Option<String>,
    pub(super) jwks_path: JwksPath,
    pub(super) key_source: Option<Arc<dyn KeySource>>,
    pub(super) jwks: JwksConfig,
    pub(super) window: ReplayWindow,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) store: Option<Arc<dyn IdempotencyStore>>,
    pub(super) memory: MemoryStoreConfig,
    pub(super) processing_ttl: Duration,
    pub(super) done_ttl: Duration,
    pub(super) handler_timeout: Duration,
    pub(super) body_limit: usize,
    pub(super) body_timeout: Duration,
    pub(super) max_in_flight: usize,
    pub(super) path: String,
    pub(super) ordering: Option<EntityOrdering>,
    pub(super) park_after: Option<u32>,
    pub(super) park_limits: ParkLimits,
    pub(super) state: S,
    pub(super) handlers: HandlerMap<S>,
}

impl<S> std::fmt::Debug for WebhooksBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhooksBuilder")
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_path", &self.jwks_path)
            .field("key_source", &self.key_source.as_ref().map(|_| ".."))
            .field("jwks", &self.jwks)
            .field("window", &self.window)
            .field("custom_store", &self.store.is_some())
            .field("memory", &self.memory)
            .field("processing_ttl", &self.processing_ttl)
            .field("done_ttl", &self.done_ttl)
            .field("handler_timeout", &self.handler_timeout)
            .field("body_limit", &self.body_limit)
            .field("body_timeout", &self.body_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("path", &self.path)
            .field("ordering", &self.ordering)
            .field("park_after", &self.park_after)
            .field("park_limits", &self.park_limits)
            .finish_non_exhaustive()
    }
}

impl Default for WebhooksBuilder<()> {
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
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            path: DEFAULT_PATH.to_owned(),
            ordering: None,
            park_after: None,
            park_limits: ParkLimits::default(),
            state: (),
            handlers: HandlerMap::default(),
        }
    }
}

impl WebhooksBuilder<()> {
    /// Gives handlers application state (a database pool, a client, …): a handler can then take
    /// [`State<S>`](crate::handler::State) as its first argument, and gets a clone per call.
    ///
    /// ```
    /// use kinde_core::{Webhooks, event::{Event, UserCreated}, handler::State};
    /// # #[derive(Clone)] struct Pool;
    /// # impl Pool { async fn insert(&self, _: &str) -> Result<(), std::io::Error> { Ok(()) } }
    /// let webhooks = Webhooks::builder()
    ///     .issuer("acme.kinde.com")
    ///     .state(Pool)
    ///     .on(async |State(pool): State<Pool>, e: Event<UserCreated>| -> Result<(), std::io::Error> {
    ///         pool.insert(&e.data.user.id).await
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = webhooks;
    /// ```
    pub fn state<S: Clone + Send + Sync + 'static>(self, state: S) -> WebhooksBuilder<S> {
        WebhooksBuilder {
            issuer: self.issuer,
            jwks_url: self.jwks_url,
            jwks_path: self.jwks_path,
            key_source: self.key_source,
            jwks: self.jwks,
            window: self.window,
            clock: self.clock,
            store: self.store,
            memory: self.memory,
            processing_ttl: self.processing_ttl,
            done_ttl: self.done_ttl,
            handler_timeout: self.handler_timeout,
            body_limit: self.body_limit,
            body_timeout: self.body_timeout,
            max_in_flight: self.max_in_flight,
            path: self.path,
            ordering: self.ordering,
            park_after: self.park_after,
            park_limits: self.park_limits,
            handlers: self.handlers.with_state(()),
            state,
        }
    }
}

impl<S: Clone + Send + Sync + 'static> WebhooksBuilder<S> {
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

    /// JWKS cache tuning (TTL and its clamps, refetch cooldown, key count). The fetch's timeout
    /// and size bound are the key source's ([`HttpKeySource::builder`](crate::verify::HttpKeySource)).
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

    /// The idempotency store (default: an in-memory [`MemoryStore`](crate::store::MemoryStore)).
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

    /// How long the adapters wait for the whole body, from the end of the request head
    /// (default 10 s; a total, not an idle timeout, so a trickle is cut off too). Later:
    /// `408 body_timeout`, and the connection is closed.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// How many deliveries may be in flight at once — bodies being read or handled — across
    /// every worker and clone (default 1 024). Past it: `503 too_many_deliveries` with
    /// `Retry-After`. With the body limit it bounds the memory strangers can hold:
    /// `body_limit × max_in_flight`.
    pub fn max_in_flight(mut self, deliveries: usize) -> Self {
        self.max_in_flight = deliveries;
        self
    }

    /// The path adapters intercept (default `/kinde/webhook`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Turns ordering on: per entity, the latest event (by its signed `timestamp`) wins; an
    /// older one is answered `200 superseded` and runs no handler. Off by default. See
    /// [`EntityOrdering`] for the keys and the rules.
    ///
    /// ```
    /// use kinde_core::{EntityOrdering, Webhooks};
    /// let webhooks = Webhooks::builder()
    ///     .issuer("acme.kinde.com")
    ///     .ordering(EntityOrdering::latest_wins())
    ///     .build()
    ///     .unwrap();
    /// # let _ = webhooks;
    /// ```
    pub fn ordering(mut self, ordering: EntityOrdering) -> Self {
        self.ordering = Some(ordering);
        self
    }

    /// Turns parking on: failed attempts are counted per event (a handler error, panic or
    /// timeout, or `unparseable_event`), and the `attempts`-th failure parks the event — its
    /// token and last error are kept ([`Webhooks::parked`](crate::Webhooks::parked)) and the answer is `200 parked`, so
    /// Kinde stops retrying and does not disable the endpoint over one poison event. Replay it
    /// with [`Webhooks::replay`](crate::Webhooks::replay) once fixed. Off by default; at least 1.
    pub fn park_after(mut self, attempts: u32) -> Self {
        self.park_after = Some(attempts);
        self
    }

    /// Bounds of the parked set (default 10 000 events or 64 MiB). A park into a full set is
    /// refused: the delivery answers 500 as without parking (never dropped).
    pub fn park_limits(mut self, limits: ParkLimits) -> Self {
        self.park_limits = limits;
        self
    }

    /// Registers the handler for the documented type `T` (one handler per type): an `async fn`
    /// or closure taking `Event<T>` (or `State<S>, Event<T>`). The raw `data` is parsed into `T`
    /// just before it runs; if it does not match, the answer is `500 unparseable_event` (Kinde
    /// retries while you upgrade) and the handler does not run.
    pub fn on<T: KindeEvent, M: 'static>(mut self, handler: impl Handler<T, S, M>) -> Self {
        self.handlers.on(handler);
        self
    }

    /// Registers the handler for a type string (any type, documented or not). It gets the raw
    /// `data` ([`Event`](crate::Event), i.e. `Event<serde_json::Value>`; read it with
    /// [`Event::parse`](crate::Event::parse)).
    pub fn on_type<M: 'static>(
        mut self,
        event_type: impl Into<String>,
        handler: impl Handler<serde_json::Value, S, M>,
    ) -> Self {
        self.handlers.on_type(event_type.into(), handler);
        self
    }

    /// Registers the handler for every type without its own, with the raw `data`. Without a
    /// fallback, such types are answered `200 ignored`.
    pub fn fallback<M: 'static>(mut self, handler: impl Handler<serde_json::Value, S, M>) -> Self {
        self.handlers.fallback(handler);
        self
    }
}
