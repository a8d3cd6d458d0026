//! Shared set-up for kinde-core's integration tests: a real issuer on a loopback port, a real
//! in-memory store whose calls are counted, and handlers that record what they saw.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;
use kinde_core::event::{Event, UserCreated, UserDeleted};
use kinde_core::store::{
    Claim, ClaimRequest, ClaimToken, Completion, Failed, Failure, Fenced, IdempotencyStore,
    ParkedEvent, StoreError,
};
use kinde_core::testing::{JwksServer, TestIssuer};
use kinde_core::verify::JwksConfig;
use kinde_core::EventId;
use kinde_core::{
    BoxError, Event as RawEvent, MemoryStore, State, WebhookResponse, Webhooks, WebhooksBuilder,
};

/// A real [`MemoryStore`] that counts the calls it gets and can be told to fail completions.
#[derive(Default)]
pub struct CountingStore {
    pub inner: MemoryStore,
    pub calls: AtomicUsize,
    pub fail_complete: AtomicBool,
    pub fail_all: AtomicBool,
}

impl CountingStore {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn enter(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_all.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "store switched off by the test".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for CountingStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        self.enter()?;
        self.inner.claim(request).await
    }
    async fn complete(
        &self,
        id: &EventId,
        t: &ClaimToken,
        completion: &Completion<'_>,
    ) -> Result<Fenced, StoreError> {
        self.enter()?;
        if self.fail_complete.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "completion switched off by the test".into(),
            ));
        }
        self.inner.complete(id, t, completion).await
    }
    async fn release(
        &self,
        id: &EventId,
        t: &ClaimToken,
        entity: Option<&str>,
    ) -> Result<Fenced, StoreError> {
        self.enter()?;
        self.inner.release(id, t, entity).await
    }
    async fn fail(
        &self,
        id: &EventId,
        t: &ClaimToken,
        entity: Option<&str>,
        failure: &Failure<'_>,
    ) -> Result<Failed, StoreError> {
        self.enter()?;
        self.inner.fail(id, t, entity, failure).await
    }
    async fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        self.enter()?;
        self.inner.parked().await
    }
    async fn parked_event(&self, id: &EventId) -> Result<Option<ParkedEvent>, StoreError> {
        self.enter()?;
        self.inner.parked_event(id).await
    }
    async fn unpark(&self, id: &EventId, entity: Option<&str>) -> Result<bool, StoreError> {
        self.enter()?;
        self.inner.unpark(id, entity).await
    }
}

/// What handlers saw.
#[derive(Default)]
pub struct Calls {
    pub seen: Mutex<Vec<(String, String)>>,
    /// Handler invocations that should fail before one succeeds.
    pub fail_next: AtomicUsize,
}

impl Calls {
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    pub fn ids(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, id)| id.clone())
            .collect()
    }
    pub fn record(&self, ty: &str, id: &str) -> Result<(), BoxError> {
        self.seen
            .lock()
            .unwrap()
            .push((ty.to_owned(), id.to_owned()));
        let fail = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err("handler told to fail".into());
        }
        Ok(())
    }
}

pub struct Harness {
    pub issuer: TestIssuer,
    pub server: JwksServer,
    pub store: Arc<CountingStore>,
    pub calls: Arc<Calls>,
    pub webhooks: Webhooks,
}

/// JWKS tuning for tests: a short cooldown so "issuer back" is seen quickly.
pub fn fast_jwks() -> JwksConfig {
    JwksConfig::default()
        .refetch_cooldown(Duration::from_millis(50))
        .min_ttl(Duration::from_millis(10))
}

/// The test server's keys over HTTP with a fetch timeout no loopback fetch on a loaded machine
/// runs into (tests that expect a timeout or a size bound set their own).
pub fn http_keys(server: &JwksServer) -> kinde_core::verify::HttpKeySourceBuilder {
    kinde_core::verify::HttpKeySource::builder(server.jwks_url().parse().unwrap())
        .fetch_timeout(Duration::from_secs(30))
}

/// The builder the harness hands to tests: its handlers take the recorded calls as state.
pub type Builder = WebhooksBuilder<Arc<Calls>>;

/// Handlers for `user.created` and `user.deleted` (typed) and a fallback, all recorded.
pub fn with_handlers(builder: Builder) -> Builder {
    builder
        .on(async |State(c): State<Arc<Calls>>, e: Event<UserCreated>| {
            c.record("user.created", e.id())
        })
        .on(async |State(c): State<Arc<Calls>>, e: Event<UserDeleted>| {
            c.record("user.deleted", e.id())
        })
        .fallback(async |State(c): State<Arc<Calls>>, e: RawEvent| {
            c.record(&e.meta.event_type, e.id())
        })
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(|b| b).await
    }

    pub async fn with(configure: impl FnOnce(Builder) -> Builder) -> Self {
        Self::with_keys(http_keys, configure).await
    }

    /// A harness whose key source is built from the test server by `keys`.
    pub async fn with_keys(
        keys: impl FnOnce(&JwksServer) -> kinde_core::verify::HttpKeySourceBuilder,
        configure: impl FnOnce(Builder) -> Builder,
    ) -> Self {
        let issuer = TestIssuer::new();
        let server = issuer.serve().await;
        let store = Arc::new(CountingStore::default());
        let calls = Arc::new(Calls::default());
        let builder = Webhooks::builder()
            .key_source(keys(&server).build().unwrap())
            .jwks_config(fast_jwks())
            .store(store.clone())
            .state(calls.clone());
        let webhooks = configure(with_handlers(builder)).build().unwrap();
        Self {
            issuer,
            server,
            store,
            calls,
            webhooks,
        }
    }

    pub async fn send(&self, body: impl AsRef<[u8]>) -> WebhookResponse {
        self.webhooks.handle(&HeaderMap::new(), body.as_ref()).await
    }

    pub async fn send_with_id(&self, body: impl AsRef<[u8]>, webhook_id: &str) -> WebhookResponse {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", webhook_id.parse().unwrap());
        self.webhooks.handle(&h, body.as_ref()).await
    }
}

/// Asserts status and code of a response.
#[track_caller]
pub fn assert_answer(resp: &WebhookResponse, status: u16, code: &str) {
    assert_eq!(
        (resp.status().as_u16(), resp.outcome().code()),
        (status, code),
        "body: {:?}",
        resp.body()
    );
}

/// Polls `check` until it gives a value, every 20 ms, for at most `bound` (then panics): a wait
/// on a condition, never a fixed sleep.
pub async fn eventually<T, F, Fut>(bound: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
