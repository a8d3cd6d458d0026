//! The framework-free entry point: `(headers, body)` in, the response to send out.

mod builder;
mod outcome;

pub use builder::{
    BuildError, WebhooksBuilder, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PATH,
};
pub use outcome::{Outcome, WebhookResponse};

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use http::HeaderMap;
use serde_json::value::RawValue;
use tracing::{field, Instrument as _};

use crate::event::{Event, EventMeta};
use crate::handler::{ErasedHandler, Handlers, Invocation};
use crate::store::{Claim, ClaimToken, Fenced, IdempotencyStore};
use crate::verify::{JwksCache, Verifier, VerifyError};

pub(crate) struct Inner {
    pub(crate) verifier: Verifier,
    pub(crate) store: Arc<dyn IdempotencyStore>,
    pub(crate) handlers: Handlers,
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
    pub(crate) body_timeout: Duration,
    pub(crate) processing_ttl: Duration,
    pub(crate) done_ttl: Duration,
    pub(crate) handler_timeout: Duration,
    pub(crate) body_limit: usize,
    pub(crate) path: String,
}

/// A Kinde webhook receiver: verification, deduplication and dispatch behind one call.
///
/// Cheap to clone (an `Arc`): build it once and share it with every worker, so the key cache,
/// the store and the bound on deliveries in flight are shared too.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("path", &self.inner.path)
            .field("handlers", &self.inner.handlers)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Starts a configuration.
    pub fn builder() -> WebhooksBuilder {
        WebhooksBuilder::default()
    }

    /// The path the path-intercepting adapters (a tower layer, an actix middleware) answer.
    /// Endpoint-shaped adapters are mounted by the app's router and ignore it.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The largest body accepted; adapters stop reading past it.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// The key cache (to warm it, or read its fetch count).
    pub fn jwks(&self) -> &Arc<JwksCache> {
        self.inner.verifier.jwks()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Starts fetching the keys in the background (failures are logged; deliveries fetch on
    /// demand anyway). Needs a tokio runtime.
    pub fn warm_up(&self) {
        let jwks = self.jwks().clone();
        tokio::spawn(async move {
            if let Err(e) = jwks.refresh().await {
                tracing::warn!(error = %e, "could not warm the JWKS cache; will fetch on demand");
            }
        });
    }

    /// Verifies one token and nothing else: the signature, the token kind, the claims and the
    /// replay window — no deduplication, no handler. For receivers that do the rest themselves
    /// (a queue, a serverless function).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use kinde_core::testing::{TestEvent, TestIssuer};
    /// use kinde_core::event::{EventPayload, UserCreated};
    /// use kinde_core::Webhooks;
    ///
    /// let issuer = TestIssuer::new();
    /// let jwks = issuer.serve().await;
    /// let webhooks = Webhooks::builder().issuer(jwks.url()).build().unwrap();
    /// let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    ///
    /// let event = webhooks.verify(token.as_bytes()).await.unwrap();
    /// assert_eq!(event.meta.event_type, "user.created");
    /// let created: UserCreated = event.parse().unwrap();           // one type…
    /// match event.into_payload().unwrap().data {                    // …or any
    ///     EventPayload::UserCreated(c) => assert_eq!(c, created),
    ///     other => panic!("{other:?}"),
    /// }
    /// // A forgery is an error saying why.
    /// let forged = issuer.forge(&TestEvent::sample("user.created").into_claims());
    /// assert!(webhooks.verify(forged.as_bytes()).await.is_err());
    /// # }
    /// ```
    pub async fn verify(&self, token: &[u8]) -> Result<Event, VerifyError> {
        let token = self.inner.verifier.verify(token).await?;
        let data = serde_json::from_str(token.data.get())
            .map_err(|e| VerifyError::InvalidClaims(e.to_string()))?;
        Ok(Event::new(token.meta, data))
    }

    /// Handles one delivery whose body was read: verifies the token, deduplicates on the signed
    /// `event_id`, runs the handler and returns the response to send. Never panics, whatever
    /// the input or the handler does.
    ///
    /// Adapters call this through [`crate::adapter`], which also bounds the body's size and
    /// deadline and the deliveries in flight; call it directly only with a body you read under
    /// such bounds yourself.
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> WebhookResponse {
        let span = tracing::info_span!(
            "kinde_webhook",
            webhook_id = field::Empty,
            event_id = field::Empty,
            event_type = field::Empty,
            outcome = field::Empty,
            status = field::Empty,
            latency_us = field::Empty,
        );
        let started = Instant::now();
        let mut verified_type = None;
        let outcome = self
            .process(headers, body, &mut verified_type)
            .instrument(span.clone())
            .await;
        crate::metrics::delivery(outcome.code(), verified_type.as_deref());
        let status = outcome.status().as_u16();
        span.record("outcome", outcome.code());
        span.record("status", status);
        span.record("latency_us", started.elapsed().as_micros() as u64);
        span.in_scope(|| match &outcome {
            Outcome::Rejected(e) if status >= 500 => {
                tracing::warn!(error = %e, "delivery not verified")
            }
            Outcome::Rejected(e) => tracing::debug!(reason = %e, "delivery rejected"),
            o if status >= 500 => tracing::warn!(outcome = o.code(), "delivery failed"),
            o => tracing::debug!(outcome = o.code(), "delivery answered"),
        });
        WebhookResponse::new(outcome)
    }

    /// The pipeline; `verified_type` gets the event's type once verified (for the metrics).
    async fn process(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        verified_type: &mut Option<String>,
    ) -> Outcome {
        let webhook_id = match headers.get("webhook-id") {
            None => None,
            Some(v) => {
                let b = v.as_bytes();
                if !b.is_empty() && !crate::event::is_valid_id(b) {
                    return Outcome::InvalidWebhookId;
                }
                // Visible ASCII (checked above), so this is the header as sent.
                let id = String::from_utf8_lossy(b).into_owned();
                tracing::Span::current().record("webhook_id", id.as_str());
                Some(id)
            }
        };
        if body.len() > self.inner.body_limit {
            return Outcome::PayloadTooLarge;
        }
        let token = match self.inner.verifier.verify(body).await {
            Ok(t) => t,
            Err(e) => return Outcome::Rejected(e),
        };
        let mut meta = token.meta;
        meta.webhook_id = webhook_id;
        let span = tracing::Span::current();
        span.record("event_id", meta.event_id.as_str());
        span.record("event_type", meta.event_type.as_str());
        if cfg!(feature = "metrics") {
            *verified_type = Some(meta.event_type.clone());
        }
        let Some(handler) = self.inner.handlers.get(&meta.event_type).cloned() else {
            return Outcome::Ignored;
        };
        let claim = self
            .inner
            .store
            .claim(&meta.event_id, self.inner.processing_ttl)
            .await;
        match claim {
            Ok(Claim::StartProcessing(claim)) => {
                let this = self.clone();
                let work =
                    async move { this.run_and_settle(handler, meta, token.data, claim).await };
                // Runs inline; if the caller goes away mid-handler (the client hung up), the rest
                // moves to a task of its own: the work is neither cancelled nor left unsettled.
                DetachOnDrop::new(work.in_current_span()).await
            }
            Ok(Claim::AlreadyHandled) => Outcome::Duplicate,
            Ok(Claim::InProgress) => Outcome::InProgress,
            Err(e) => {
                crate::metrics::store_error();
                tracing::warn!(error = %e, "idempotency store unavailable");
                Outcome::StoreUnavailable
            }
        }
    }

    async fn run_and_settle(
        &self,
        handler: ErasedHandler,
        meta: EventMeta,
        data: Box<RawValue>,
        claim: ClaimToken,
    ) -> Outcome {
        let event_id = meta.event_id.clone();
        let event_type = cfg!(feature = "metrics").then(|| meta.event_type.clone());
        let failure = match handler(meta, &data) {
            Invocation::Unparseable(e) => {
                tracing::error!(
                    error = %e,
                    "the event's data does not match its documented schema; answering 500 so Kinde retries"
                );
                Some(Outcome::UnparseableEvent)
            }
            Invocation::Panicked => {
                tracing::error!("handler panicked; releasing the claim so Kinde retries");
                Some(Outcome::HandlerFailed)
            }
            Invocation::Started(run) => {
                let run = AssertUnwindSafe(run).catch_unwind();
                let started = Instant::now();
                let ran = tokio::time::timeout(self.inner.handler_timeout, run).await;
                if let Some(ty) = &event_type {
                    crate::metrics::handler_duration(ty, started.elapsed());
                }
                let reason = match ran {
                    Ok(Ok(Ok(()))) => None,
                    Ok(Ok(Err(e))) => Some(format!("handler returned an error: {e}")),
                    Ok(Err(_panic)) => Some("handler panicked".to_owned()),
                    Err(_) => Some(format!(
                        "handler timed out after {:?}",
                        self.inner.handler_timeout
                    )),
                };
                reason.map(|reason| {
                    tracing::error!(%reason, "handler failed; releasing the claim so Kinde retries");
                    Outcome::HandlerFailed
                })
            }
        };
        let store = &self.inner.store;
        match failure {
            None => {
                match store
                    .complete(&event_id, &claim, self.inner.done_ttl)
                    .await
                {
                    Ok(Fenced::Applied) => {}
                    Ok(_) => tracing::warn!(
                        "handled, but the claim had expired and was taken over: the event may be handled twice"
                    ),
                    // The work is done; a retry would repeat it. Answer 200, keep the claim (so
                    // retries meanwhile are 409, not a second run) and keep trying to record it.
                    Err(e) => {
                        crate::metrics::store_error();
                        tracing::error!(error = %e, "handled, but the completion could not be recorded; retrying in the background");
                        self.complete_later(event_id, claim);
                    }
                }
                Outcome::Handled
            }
            Some(outcome) => {
                match store.release(&event_id, &claim).await {
                    Ok(Fenced::Applied) => {}
                    Ok(_) => tracing::warn!("the claim was already taken over when released"),
                    Err(e) => {
                        crate::metrics::store_error();
                        tracing::error!(error = %e, "could not release the claim; it expires after the processing TTL")
                    }
                }
                outcome
            }
        }
    }
}

impl Webhooks {
    /// Retries a completion the store refused, with back-off, for as long as the claim holds
    /// (the processing TTL). Until it lands, deliveries of the event get 409; if it never does,
    /// the claim expires and a retry runs the handler again — said at ERROR level.
    fn complete_later(&self, event_id: crate::EventId, claim: ClaimToken) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        let deadline = tokio::time::Instant::now() + self.inner.processing_ttl;
        rt.spawn(
            async move {
                let mut pause = Duration::from_millis(50);
                loop {
                    tokio::time::sleep(pause).await;
                    if tokio::time::Instant::now() >= deadline {
                        tracing::error!(
                            "the completion was never recorded and the claim expired: a retry of this event will run its handler again"
                        );
                        return;
                    }
                    let store = &this.inner.store;
                    match store.complete(&event_id, &claim, this.inner.done_ttl).await {
                        Ok(Fenced::Applied) => {
                            tracing::info!("the completion was recorded after all");
                            return;
                        }
                        Ok(_) => {
                            tracing::warn!("the claim was taken over before the completion could be recorded");
                            return;
                        }
                        Err(_) => pause = (pause * 2).min(Duration::from_secs(5)),
                    }
                }
            }
            .in_current_span(),
        );
    }
}

/// Polls a future inline; when dropped before it finished, spawns the rest on the current tokio
/// runtime so it still completes (a claim is always completed or released).
struct DetachOnDrop {
    future: Option<BoxFuture<'static, Outcome>>,
}

impl DetachOnDrop {
    fn new(future: impl Future<Output = Outcome> + Send + 'static) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl Future for DetachOnDrop {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(Outcome::HandlerFailed);
        };
        let outcome = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(outcome)
    }
}

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        if let Some(rest) = self.future.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(rest);
                }
                Err(_) => tracing::error!(
                    "delivery dropped outside a tokio runtime mid-handler; its claim expires after the processing TTL"
                ),
            }
        }
    }
}
