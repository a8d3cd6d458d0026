//! The framework-free entry point: `(headers, body)` in, the response to send out.

mod build;
mod builder;
mod error;
mod ordering;
mod outcome;
mod pipeline;
mod redrive;
mod replay;

pub use builder::{
    WebhooksBuilder, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_PATH,
};
pub use error::BuildError;
pub use ordering::EntityOrdering;
pub use outcome::{Outcome, WebhookResponse};
pub use redrive::{Redrive, RedriveReport};
pub use replay::ReplayError;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use tracing::{field, Instrument as _};

use crate::event::Event;
use crate::handler::Handlers;
use crate::store::IdempotencyStore;
use crate::verify::{JwksCache, Verifier, VerifyError};

pub(crate) struct Inner {
    pub(crate) ordering: Option<EntityOrdering>,
    pub(crate) park_after: Option<u32>,
    pub(crate) park_limits: crate::store::ParkLimits,
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
        crate::metrics::delivery(outcome.code(), verified_type);
        let status = outcome.status().as_u16();
        record3(
            &span,
            ("outcome", &outcome.code()),
            ("status", &status),
            ("latency_us", &(started.elapsed().as_micros() as u64)),
        );
        // Inside the span (its explicit parent: nothing is entered for an event filtered out).
        match &outcome {
            Outcome::Rejected(e) if status >= 500 => {
                tracing::warn!(parent: &span, error = %e, "delivery not verified")
            }
            Outcome::Rejected(e) => {
                tracing::debug!(parent: &span, reason = %e, "delivery rejected")
            }
            o if status >= 500 => {
                tracing::warn!(parent: &span, outcome = o.code(), "delivery failed")
            }
            o => tracing::debug!(parent: &span, outcome = o.code(), "delivery answered"),
        }
        WebhookResponse::new(outcome)
    }
}

/// A field to record: its name in the span, and the value.
type FieldValue<'a> = (&'static str, &'a dyn field::Value);

/// Records two fields of `span` in one call into the subscriber (nothing when the span is
/// disabled). A name the span does not declare is not recorded, as with `Span::record`.
pub(super) fn record2(span: &tracing::Span, a: FieldValue<'_>, b: FieldValue<'_>) {
    let Some(metadata) = span.metadata() else {
        return;
    };
    let fields = metadata.fields();
    if let (Some(ka), Some(kb)) = (fields.field(a.0), fields.field(b.0)) {
        span.record_all(&fields.value_set(&[(&ka, Some(a.1)), (&kb, Some(b.1))]));
    }
}

/// [`record2`] for three fields.
fn record3(span: &tracing::Span, a: FieldValue<'_>, b: FieldValue<'_>, c: FieldValue<'_>) {
    let Some(metadata) = span.metadata() else {
        return;
    };
    let fields = metadata.fields();
    if let (Some(ka), Some(kb), Some(kc)) =
        (fields.field(a.0), fields.field(b.0), fields.field(c.0))
    {
        let values = [(&ka, Some(a.1)), (&kb, Some(b.1)), (&kc, Some(c.1))];
        span.record_all(&fields.value_set(&values));
    }
}
