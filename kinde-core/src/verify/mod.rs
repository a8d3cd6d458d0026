//! What makes a body an authentic Kinde event: an RS256 JWS signed by a key of the issuer's JWKS,
//! of webhook shape (not an access or ID token of the same tenant), inside the replay window.

mod claims;
pub(crate) mod crypto;
mod issuer;
mod jwks;
mod keys;
mod source;
mod token;

pub use crypto::VerifyingKey;
pub use issuer::{check_url, jwks_url, normalize_issuer, IssuerError, JwksPath};
pub use jwks::{JwksCache, JwksConfig, KeyError};
pub use keys::{EXPONENTS, MODULUS_BITS};
pub use source::{FetchedJwks, JwksError, KeySource, StaticKeySource};
#[cfg(feature = "http-jwks")]
pub use source::{HttpKeySource, HttpKeySourceBuilder};

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::value::RawValue;

use crate::clock::Clock;
use crate::event::EventMeta;

/// Why a token was refused. Each variant is one class of refusal; its HTTP status and code are
/// in the one status table, on [`Outcome`](crate::Outcome) (as [`Outcome::Rejected`](crate::Outcome::Rejected)):
/// a forgery or a malformed token is a 4xx, keys that cannot be had right now a 503.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Empty body, not a compact JWS, bad base64 or JSON in the header.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not RS256.
    #[error("unsupported algorithm {0:?}: only RS256 is accepted")]
    UnsupportedAlgorithm(Algorithm),
    /// The header lists critical extensions (`crit`), or uses RFC 7797's `b64`: we understand
    /// none, so RFC 7515 §4.1.11 says refuse.
    #[error("token header uses an extension we do not understand (crit or b64)")]
    UnsupportedCrit,
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// No usable key with this `kid` in a key set fetched after the delivery arrived, or the
    /// JWKS lists it with a key we refuse.
    #[error("unknown kid")]
    UnknownKid,
    /// The `kid` is not in the cached keys, which are older than the delivery, and the refetch
    /// cooldown forbids looking now.
    #[error("unknown kid; the JWKS may be refetched in {retry_after:?}")]
    KidRefetchThrottled {
        /// What is left of the refetch cooldown.
        retry_after: Duration,
    },
    /// The keys cannot be fetched right now.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(Arc<JwksError>),
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// Signed, but the claims are not a JSON object we can read, or `type` is not 1–256 bytes
    /// of visible ASCII.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// Signed by the tenant, but not a webhook (an access or ID token, say: no `type`,
    /// `event_id`, `timestamp` or `data`, or an audience).
    #[error("not a webhook token")]
    WrongTokenKind,
    /// `event_id` empty, too long or not visible ASCII.
    #[error("invalid event_id")]
    InvalidEventId,
    /// `timestamp` unreadable.
    #[error("invalid timestamp")]
    InvalidTimestamp,
    /// `timestamp` older than the replay window.
    #[error("event is older than the replay window")]
    Stale,
    /// `timestamp` further in the future than allowed.
    #[error("event timestamp is in the future")]
    Future,
    /// `exp` present and past.
    #[error("token expired")]
    Expired,
    /// `nbf` present and not reached.
    #[error("token not yet valid")]
    NotYetValid,
}

/// The replay window on the signed `timestamp`.
///
/// ```
/// use std::time::Duration;
/// use kinde_core::ReplayWindow;
/// let window = ReplayWindow::default().max_age(Duration::from_secs(24 * 3600));
/// assert_eq!(window.max_future_allowed(), Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ReplayWindow {
    pub(crate) max_age: Duration,
    pub(crate) max_future: Duration,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(48 * 3600),
            max_future: Duration::from_secs(300),
        }
    }
}

impl ReplayWindow {
    /// Sets the oldest accepted event (default 48 h: Kinde retries for ~36 h).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Sets how far in the future a timestamp may be (clock skew; default 5 min).
    pub fn max_future(mut self, ahead: Duration) -> Self {
        self.max_future = ahead;
        self
    }

    /// The oldest accepted event.
    pub fn max_age_allowed(&self) -> Duration {
        self.max_age
    }

    /// How far in the future a timestamp may be.
    pub fn max_future_allowed(&self) -> Duration {
        self.max_future
    }
}

/// A verified token: envelope fields and the still-raw `data`.
#[derive(Debug)]
pub struct VerifiedToken {
    /// Envelope fields (`webhook_id` is left empty: it is not part of the token).
    pub meta: EventMeta,
    /// The `data` claim as sent: usually an object, but any JSON value is passed on (whether it
    /// fits the event type is for the handler to say).
    pub data: Box<RawValue>,
}

/// Decoded token headers up to this size stay on the stack.
const HEADER_STACK: usize = 256;
/// Decoded payloads up to this size stay on the stack.
const PAYLOAD_STACK: usize = 4096;

/// Verifies tokens against a JWKS cache and a replay window.
pub struct Verifier {
    jwks: Arc<JwksCache>,
    window: ReplayWindow,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("jwks", &self.jwks)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier over a JWKS cache.
    pub fn new(jwks: Arc<JwksCache>, window: ReplayWindow, clock: Arc<dyn Clock>) -> Self {
        Self {
            jwks,
            window,
            clock,
        }
    }

    /// The JWKS cache.
    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// Verifies one body: the header is read and checked, the key for its `kid` looked up, the
    /// RS256 signature checked, then the claims are parsed (once) and checked. Nothing but the
    /// header is read before the signature is known to be the issuer's.
    pub async fn verify(&self, body: &[u8]) -> Result<VerifiedToken, VerifyError> {
        self.verify_within(body, Some(&self.window)).await
    }

    /// [`Verifier::verify`] without the replay window: for replaying a parked event, whose
    /// token was verified when it was delivered and may be older than the window now. Every
    /// other check is made.
    pub async fn verify_replay(&self, body: &[u8]) -> Result<VerifiedToken, VerifyError> {
        self.verify_within(body, None).await
    }

    async fn verify_within(
        &self,
        body: &[u8],
        window: Option<&ReplayWindow>,
    ) -> Result<VerifiedToken, VerifyError> {
        let token = body.trim_ascii();
        if token.is_empty() {
            return Err(VerifyError::Malformed("empty body"));
        }
        let parts = token::split(token)?;
        let arrived = std::time::Instant::now();
        // The header is read in a scope of its own, so that its buffer is not part of the
        // future (only the owned `kid` of a cache miss waits across the fetch).
        let cached = {
            let (mut stack, mut heap) = ([0u8; HEADER_STACK], Vec::new());
            let header = token::decode(parts.header, &mut stack, &mut heap)
                .map_err(|_| VerifyError::Malformed("unreadable token header"))?;
            let kid = token::check_header(header)?;
            self.jwks
                .fresh_key(&kid, arrived)
                .ok_or_else(|| kid.into_owned())
        };
        let key = match cached {
            Ok(key) => key,
            // A cache miss (first delivery, expired keys, unknown kid): boxed, so the fetch's
            // state is not carried by every delivery's future.
            Err(kid) => Box::pin(self.jwks.key_for(&kid, arrived))
                .await
                .map_err(|e| match e {
                    KeyError::UnknownKid => VerifyError::UnknownKid,
                    KeyError::RefetchThrottled { retry_after } => {
                        VerifyError::KidRefetchThrottled { retry_after }
                    }
                    KeyError::Unavailable(err) => VerifyError::KeysUnavailable(err),
                })?,
        };
        let mut signature = [0u8; crypto::MAX_SIGNATURE_LEN];
        let signature = token::decode_signature(parts.signature, &mut signature)?;
        if !key.verify_rs256(parts.signing_input, signature) {
            return Err(VerifyError::InvalidSignature);
        }
        let (mut stack, mut heap) = ([0u8; PAYLOAD_STACK], Vec::new());
        let payload = token::decode(parts.payload, &mut stack, &mut heap)
            .map_err(|_| VerifyError::Malformed("bad base64 in token"))?;
        claims::check(claims::parse(payload)?, self.clock.now(), window)
    }
}
