//! One delivery's way through, after the body is read: verify, look the handler up, claim the
//! event (and its entity, with ordering on), run the handler, settle the claim.

use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use http::HeaderMap;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tracing::Instrument as _;

use super::ordering::deletes;
use super::{Outcome, Webhooks};
use crate::event::{EventId, EventMeta};
use crate::handler::{ErasedHandler, Invocation};
use crate::store::{Claim, ClaimRequest, ClaimToken, Completion, Entity, Failed, Failure, Fenced};

/// A claimed event on its way to the handler, with what settling it needs.
struct Claimed {
    handler: ErasedHandler,
    /// Handed to the handler (taken by [`Webhooks::run`]).
    meta: Option<EventMeta>,
    id: EventId,
    /// Whether the event deletes its entity (`*.deleted`).
    deletes: bool,
    /// The type, kept when something after the handler needs it (parking, metrics): borrowed
    /// for Kinde's documented types.
    event_type: Option<Cow<'static, str>>,
    data: Box<RawValue>,
    claim: ClaimToken,
    /// The entity key and the event's timestamp (µs), with ordering on.
    entity: Option<(String, i64)>,
    /// Count failures and park on the n-th (a replay re-parks on its first).
    park_after: Option<u32>,
    /// The raw token, kept when parking is on (a parked event is replayed from it).
    token: Option<String>,
}

/// The signed timestamp as ordering compares it: unix microseconds.
pub(super) fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn from_micros(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()
}

impl Webhooks {
    /// The pipeline; `verified_type` gets the event's type once verified (for the metrics).
    pub(super) async fn process(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        verified_type: &mut Option<Cow<'static, str>>,
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
        super::record2(
            &tracing::Span::current(),
            ("event_id", &meta.event_id.as_str()),
            ("event_type", &meta.event_type.as_str()),
        );
        if cfg!(feature = "metrics") {
            *verified_type = Some(crate::metrics::type_label(&meta.event_type));
        }
        let Some(handler) = self.inner.handlers.get(&meta.event_type).cloned() else {
            return Outcome::Ignored;
        };
        self.claim_and_run(handler, meta, token.data, body, false)
            .await
    }

    /// The entity key of an event, with ordering on.
    pub(super) fn entity_key(&self, meta: &EventMeta, data: &RawValue) -> Option<String> {
        self.inner
            .ordering
            .as_ref()?
            .entity_key(&meta.event_type, data)
    }

    /// Claims the event (and its entity), then runs the handler and settles the claim. Shared by
    /// deliveries and replays (`replay`: a parked event counts as new, and a failure re-parks).
    pub(super) async fn claim_and_run(
        &self,
        handler: ErasedHandler,
        mut meta: EventMeta,
        data: Box<RawValue>,
        raw_token: &[u8],
        replay: bool,
    ) -> Outcome {
        let inner = &self.inner;
        let entity = self
            .entity_key(&meta, &data)
            .map(|key| (key, micros(meta.timestamp)));
        let request = ClaimRequest::new(&meta.event_id, inner.processing_ttl, inner.done_ttl)
            .entity(entity.as_ref().map(|(key, timestamp)| Entity {
                key,
                timestamp: *timestamp,
            }))
            .replay(replay);
        match inner.store.claim(&request).await {
            Ok(Claim::StartProcessing { token, previous }) => {
                meta.entity_key = entity.as_ref().map(|(key, _)| key.clone());
                meta.previous_applied_at = previous.and_then(|p| from_micros(p.timestamp));
                let park_after = if replay { Some(1) } else { inner.park_after };
                let keep_type = park_after.is_some() || cfg!(feature = "metrics");
                let claimed = Claimed {
                    handler,
                    id: meta.event_id.clone(),
                    deletes: deletes(&meta.event_type),
                    event_type: keep_type.then(|| crate::metrics::type_label(&meta.event_type)),
                    meta: Some(meta),
                    data,
                    claim: token,
                    entity,
                    park_after,
                    token: park_after
                        .map(|_| String::from_utf8_lossy(raw_token.trim_ascii()).into_owned()),
                };
                let work = self.clone().run_and_settle(claimed);
                // Runs inline (in the delivery's span, entered by the caller); if the caller goes
                // away mid-handler (the client hung up), the rest moves to a task of its own, in
                // the same span: the work is neither cancelled nor left unsettled.
                DetachOnDrop::new(work, tracing::Span::current()).await
            }
            Ok(Claim::AlreadyHandled) => Outcome::Duplicate,
            Ok(Claim::InProgress) => Outcome::InProgress,
            Ok(Claim::Superseded) => {
                tracing::debug!("a later event of its entity was applied: superseded");
                Outcome::Superseded
            }
            Ok(Claim::Parked) => Outcome::Parked,
            Err(e) => {
                crate::metrics::store_error();
                tracing::warn!(error = %e, "idempotency store unavailable");
                Outcome::StoreUnavailable
            }
        }
    }

    /// Runs the handler; `None` when it succeeded, else the answer and what went wrong.
    async fn run(&self, c: &mut Claimed) -> Option<(Outcome, String)> {
        let meta = c.meta.take()?;
        match (c.handler)(meta, &c.data) {
            Invocation::Unparseable(e) => {
                tracing::error!(
                    error = %e,
                    "the event's data does not match its documented schema: answering 500 so Kinde retries"
                );
                Some((Outcome::UnparseableEvent, format!("unparseable event: {e}")))
            }
            Invocation::Panicked => Some((Outcome::HandlerFailed, "handler panicked".to_owned())),
            Invocation::Started(run) => {
                let mut run = AssertUnwindSafe(run).catch_unwind();
                let started = Instant::now();
                let deadline = tokio::time::Instant::now() + self.inner.handler_timeout;
                // Polled once inline: a handler done at once (most are) never arms a timer, and
                // the timeout's state is boxed only for one that waits.
                let ran = match futures_util::poll!(&mut run) {
                    Poll::Ready(done) => Ok(done),
                    Poll::Pending => Box::pin(tokio::time::timeout_at(deadline, run)).await,
                };
                if let Some(ty) = c.event_type.as_ref().filter(|_| cfg!(feature = "metrics")) {
                    crate::metrics::handler_duration(ty.clone(), started.elapsed());
                }
                match ran {
                    Ok(Ok(Ok(()))) => None,
                    Ok(Ok(Err(e))) => Some(format!("handler returned an error: {e}")),
                    Ok(Err(_panic)) => Some("handler panicked".to_owned()),
                    Err(_) => Some(format!(
                        "handler timed out after {:?}",
                        self.inner.handler_timeout
                    )),
                }
                .map(|reason| (Outcome::HandlerFailed, reason))
            }
        }
    }

    /// Takes the receiver by value: the future owns it (and `c`) once, not also as the
    /// captures of a block around it.
    async fn run_and_settle(self, mut c: Claimed) -> Outcome {
        let failure = self.run(&mut c).await;
        let store = &self.inner.store;
        let id = &c.id;
        let entity_key = c.entity.as_ref().map(|(k, _)| k.as_str());
        let Some((outcome, reason)) = failure else {
            let entity = c.entity.as_ref().map(|(key, timestamp)| Entity {
                key,
                timestamp: *timestamp,
            });
            let completion = Completion::new(self.inner.done_ttl).entity(entity, c.deletes);
            match store.complete(id, &c.claim, &completion).await {
                Ok(Fenced::Applied) => {}
                Ok(_) => tracing::warn!(
                    "handled, but the claim had expired and was taken over: the event may be handled twice"
                ),
                // The work is done; a retry would repeat it. Answer 200, keep the claim (so
                // retries meanwhile are 409, not a second run) and keep trying to record it.
                Err(e) => {
                    crate::metrics::store_error();
                    tracing::error!(error = %e, "handled, but the completion could not be recorded; retrying in the background");
                    self.complete_later(c);
                }
            }
            return Outcome::Handled;
        };
        let Some(park_after) = c.park_after else {
            tracing::error!(%reason, "the attempt failed; the claim is released so Kinde retries");
            match store.release(id, &c.claim, entity_key).await {
                Ok(Fenced::Applied) => {}
                Ok(_) => tracing::warn!("the claim was already taken over when released"),
                Err(e) => {
                    crate::metrics::store_error();
                    tracing::error!(error = %e, "could not release the claim; it expires after the processing TTL")
                }
            }
            return outcome;
        };
        let failure = Failure {
            park_after,
            limits: self.inner.park_limits,
            done_ttl: self.inner.done_ttl,
            event_type: c.event_type.as_deref().unwrap_or_default(),
            token: c.token.as_deref().unwrap_or_default(),
            error: &reason,
            at_ms: i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX),
        };
        match store.fail(id, &c.claim, entity_key, &failure).await {
            Ok(Failed::Released { attempts }) => {
                tracing::error!(%reason, attempts, park_after, "the attempt failed; the claim is released so Kinde retries");
                outcome
            }
            Ok(Failed::Parked { attempts }) => {
                crate::metrics::parked(c.event_type.as_deref().unwrap_or_default());
                tracing::warn!(
                    %reason, attempts,
                    "handler failed again: the event is parked (answered 200 so Kinde stops retrying); replay it with Webhooks::replay"
                );
                Outcome::Parked
            }
            Ok(Failed::ParkFull { attempts }) => {
                tracing::error!(%reason, attempts, "the parked set is full: not parked, answering 500 so Kinde retries");
                outcome
            }
            Ok(_) => {
                tracing::warn!(%reason, "the claim was already taken over when the failure was counted");
                outcome
            }
            Err(e) => {
                crate::metrics::store_error();
                tracing::error!(error = %e, %reason, "could not count the failure; the claim expires after the processing TTL");
                outcome
            }
        }
    }

    /// Retries a completion the store refused, with back-off, for as long as the claim holds
    /// (the processing TTL). Until it lands, deliveries of the event get 409; if it never does,
    /// the claim expires and a retry runs the handler again — said at ERROR level.
    fn complete_later(&self, c: Claimed) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        let deadline = tokio::time::Instant::now() + self.inner.processing_ttl;
        rt.spawn(
            async move {
                let mut pause = Duration::from_millis(50);
                let entity = c.entity.as_ref().map(|(key, timestamp)| Entity {
                    key,
                    timestamp: *timestamp,
                });
                let completion = Completion::new(this.inner.done_ttl).entity(entity, c.deletes);
                let id: &EventId = &c.id;
                loop {
                    tokio::time::sleep(pause).await;
                    if tokio::time::Instant::now() >= deadline {
                        tracing::error!(
                            "the completion was never recorded and the claim expired: a retry of this event will run its handler again"
                        );
                        return;
                    }
                    match this.inner.store.complete(id, &c.claim, &completion).await {
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
/// runtime, in `span`, so it still completes (a claim is always completed or released).
struct DetachOnDrop {
    future: Option<BoxFuture<'static, Outcome>>,
    span: tracing::Span,
}

impl DetachOnDrop {
    fn new(future: impl Future<Output = Outcome> + Send + 'static, span: tracing::Span) -> Self {
        Self {
            future: Some(Box::pin(future)),
            span,
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
                    rt.spawn(rest.instrument(self.span.clone()));
                }
                Err(_) => tracing::error!(
                    "delivery dropped outside a tokio runtime mid-handler; its claim expires after the processing TTL"
                ),
            }
        }
    }
}
