//! The framework-free entry point: `(headers, body)` in, the response to send out.

mod builder;
mod outcome;

pub use builder::{ConfigError, WebhooksBuilder, DEFAULT_BODY_LIMIT, DEFAULT_PATH};
pub use outcome::{Outcome, WebhookResponse};

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use http::{HeaderMap, Method};
use tracing::{field, Instrument as _};

use crate::dispatch::HandlerMap;
use crate::event::{EventPayload, WebhookEvent};
use crate::store::{Claim, ClaimToken, Fenced, IdempotencyStore};
use crate::verify::{JwksCache, Verifier};

/// Longest `webhook-id` header accepted.
pub const MAX_WEBHOOK_ID_LEN: usize = crate::verify::MAX_EVENT_ID_LEN;

pub(crate) struct Inner {
    pub(crate) verifier: Verifier,
    pub(crate) store: Arc<dyn IdempotencyStore>,
    pub(crate) handlers: HandlerMap,
    pub(crate) processing_ttl: Duration,
    pub(crate) done_ttl: Duration,
    pub(crate) handler_timeout: Duration,
    pub(crate) body_limit: usize,
    pub(crate) path: String,
}

/// A Kinde webhook receiver: verification, deduplication and dispatch behind one call.
///
/// Cheap to clone (an `Arc`): build it once and share it with every worker, so the key cache
/// and the store are shared too.
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

    /// The path adapters intercept.
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

    /// The answer before reading the body: 405 for a method other than POST, 413 for a declared
    /// `Content-Length` over the limit; `None` means read the body (up to [`Self::body_limit`])
    /// and call [`Self::handle`].
    pub fn precheck(
        &self,
        method: &Method,
        content_length: Option<u64>,
    ) -> Option<WebhookResponse> {
        if method != Method::POST {
            return Some(self.rejected_early(Outcome::MethodNotAllowed));
        }
        if content_length.is_some_and(|n| n > self.inner.body_limit as u64) {
            return Some(self.payload_too_large());
        }
        None
    }

    /// The 413 answer, for adapters whose body stream passed the limit.
    pub fn payload_too_large(&self) -> WebhookResponse {
        self.rejected_early(Outcome::PayloadTooLarge)
    }

    /// The answer for a body that could not be read (an I/O error, not the limit).
    pub fn body_read_failed(&self) -> WebhookResponse {
        self.rejected_early(Outcome::BodyReadFailed)
    }

    fn rejected_early(&self, outcome: Outcome) -> WebhookResponse {
        tracing::info!(
            outcome = outcome.code(),
            status = outcome.status().as_u16(),
            "kinde webhook refused before reading the body"
        );
        WebhookResponse::new(outcome)
    }

    /// Handles one delivery: verifies the token, deduplicates on the signed `event_id`, runs the
    /// handler and returns the response to send. Never panics, whatever the input.
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
        let outcome = self.process(headers, body).instrument(span.clone()).await;
        let status = outcome.status().as_u16();
        span.record("outcome", outcome.code());
        span.record("status", status);
        span.record("latency_us", started.elapsed().as_micros() as u64);
        span.in_scope(|| match &outcome {
            Outcome::Rejected(e) if status >= 500 => {
                tracing::warn!(error = %e, "delivery not verified")
            }
            Outcome::Rejected(e) => tracing::info!(reason = %e, "delivery rejected"),
            o if status >= 500 => tracing::warn!(outcome = o.code(), "delivery failed"),
            o => tracing::info!(outcome = o.code(), "delivery answered"),
        });
        WebhookResponse::new(outcome)
    }

    async fn process(&self, headers: &HeaderMap, body: &[u8]) -> Outcome {
        let webhook_id = match headers.get("webhook-id") {
            None => None,
            Some(v) => {
                let b = v.as_bytes();
                if !b.is_empty() && !crate::verify::is_valid_id(b) {
                    return Outcome::InvalidWebhookId;
                }
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
        let payload = match EventPayload::parse(&meta.event_type, &token.data) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "a documented event type whose data does not match its schema");
                return Outcome::UnparseableEvent;
            }
        };
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
                let event_id = meta.event_id.clone();
                let run = handler(WebhookEvent::new(meta, payload));
                let this = self.clone();
                let work = async move { this.run_and_settle(event_id, run, claim).await };
                // Runs inline; if the caller goes away mid-handler (the client hung up), the rest
                // moves to a task of its own: the work is neither cancelled nor left unsettled.
                DetachOnDrop::new(work.in_current_span()).await
            }
            Ok(Claim::AlreadyHandled) => Outcome::Duplicate,
            Ok(Claim::InProgress) => Outcome::InProgress,
            Err(e) => {
                tracing::warn!(error = %e, "idempotency store unavailable");
                Outcome::StoreUnavailable
            }
        }
    }

    async fn run_and_settle(
        &self,
        event_id: String,
        run: BoxFuture<'static, Result<(), crate::BoxError>>,
        claim: ClaimToken,
    ) -> Outcome {
        let run = AssertUnwindSafe(run).catch_unwind();
        let failure = match tokio::time::timeout(self.inner.handler_timeout, run).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(format!("handler returned an error: {e}")),
            Ok(Err(_panic)) => Some("handler panicked".to_owned()),
            Err(_) => Some(format!(
                "handler timed out after {:?}",
                self.inner.handler_timeout
            )),
        };
        let store = &self.inner.store;
        match failure {
            None => {
                match store.complete(&event_id, &claim, self.inner.done_ttl).await {
                    Ok(Fenced::Applied) => {}
                    Ok(_) => tracing::warn!(
                        "handled, but the claim had expired and was taken over: the event may be handled twice"
                    ),
                    // The work is done; a retry would repeat it. Answer 200 and say so loudly.
                    Err(e) => tracing::error!(error = %e, "handled, but the completion could not be recorded"),
                }
                Outcome::Handled
            }
            Some(reason) => {
                tracing::error!(%reason, "handler failed; releasing the claim so Kinde retries");
                match store.release(&event_id, &claim).await {
                    Ok(Fenced::Applied) => {}
                    Ok(_) => tracing::warn!("the claim was already taken over when released"),
                    Err(e) => {
                        tracing::error!(error = %e, "could not release the claim; it expires after the processing TTL")
                    }
                }
                Outcome::HandlerFailed
            }
        }
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
