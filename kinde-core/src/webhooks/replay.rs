//! Parked events: listing them, and replaying one once the cause is fixed.

use tracing::Instrument as _;

use super::{Outcome, Webhooks};
use crate::event::EventId;
use crate::store::{ParkedEvent, StoreError};
use crate::verify::VerifyError;

/// Why [`Webhooks::replay`] could not run an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// No parked event has this id.
    #[error("no parked event {0}")]
    NotParked(EventId),
    /// The parked token no longer verifies (its key was removed from the JWKS, say).
    #[error("the parked token does not verify: {0}")]
    Verify(#[from] VerifyError),
    /// The store cannot answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Webhooks {
    /// Every parked event, oldest first (parking: [`WebhooksBuilder::park_after`](crate::WebhooksBuilder::park_after)).
    pub async fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        self.inner.store.parked().await
    }

    /// Runs a parked event's handler again, under a fresh claim, and answers as a delivery
    /// would: `Handled` (it is no longer parked, and recorded handled), `Parked` (it failed
    /// again: still parked, one more attempt counted), `Superseded` (with ordering, a later event
    /// of its entity was applied meanwhile: recorded handled and unparked), `InProgress` (a
    /// delivery of it is running: try later), `Ignored` (no handler for its type any more:
    /// unparked).
    ///
    /// The token's signature is verified again (with the current keys); the replay window is
    /// skipped on purpose, since a parked event may be older than it — and logged.
    pub async fn replay(&self, event_id: &EventId) -> Result<Outcome, ReplayError> {
        let span = tracing::info_span!("kinde_webhook_replay", event_id = event_id.as_str());
        async {
            let parked = self
                .inner
                .store
                .parked_event(event_id)
                .await?
                .ok_or_else(|| ReplayError::NotParked(event_id.clone()))?;
            tracing::info!(
                attempts = parked.attempts,
                "replaying a parked event: its signature is verified again, the replay window is skipped"
            );
            let token = self
                .inner
                .verifier
                .verify_replay(parked.token.as_bytes())
                .await?;
            if token.meta.event_id != *event_id {
                return Err(ReplayError::Verify(VerifyError::InvalidEventId));
            }
            let entity = self.entity_key(&token.meta, &token.data);
            let Some(handler) = self.inner.handlers.get(&token.meta.event_type).cloned() else {
                self.inner.store.unpark(event_id, entity.as_deref()).await?;
                return Ok(Outcome::Ignored);
            };
            let outcome = self
                .claim_and_run(handler, token.meta, token.data, parked.token.as_bytes(), true)
                .await;
            match outcome {
                Outcome::Superseded | Outcome::Duplicate => {
                    self.inner.store.unpark(event_id, entity.as_deref()).await?;
                }
                Outcome::StoreUnavailable => {
                    return Err(ReplayError::Store(StoreError::Unavailable(
                        "the store could not claim the event".into(),
                    )))
                }
                _ => {}
            }
            tracing::info!(outcome = outcome.code(), "replayed");
            Ok(outcome)
        }
        .instrument(span)
        .await
    }
}
