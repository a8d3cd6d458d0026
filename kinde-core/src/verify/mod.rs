//! What makes a body an authentic Kinde event: an RS256 JWS signed by a key of the issuer's JWKS,
//! of webhook shape (not an access or ID token of the same tenant), inside the replay window.

mod issuer;
mod jwks;
mod keys;
mod source;

pub use issuer::{check_url, jwks_url, normalize_issuer, IssuerError, JwksPath};
pub use jwks::{JwksCache, JwksConfig, KeyError};
pub use keys::MODULUS_BITS;
#[cfg(feature = "http-jwks")]
pub use source::HttpKeySource;
pub use source::{FetchedJwks, JwksError, KeySource, StaticKeySource};

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Algorithm;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::event::{parse_timestamp, EventId, EventMeta, Source};

/// Longest `event_id` accepted (it becomes a store key).
pub const MAX_EVENT_ID_LEN: usize = 256;

/// Whether `id` is an acceptable identifier (an `event_id`, or the `webhook-id` header): 1 to
/// [`MAX_EVENT_ID_LEN`] bytes of visible ASCII. Ids become store keys and log fields, so nothing
/// else gets that far.
pub fn is_valid_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_EVENT_ID_LEN && id.iter().all(u8::is_ascii_graphic)
}

/// Why a token was refused. Each variant is one class, so the HTTP layer can choose the status.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Empty body, not a compact JWS, bad base64 or JSON in the header (400).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not RS256 (401).
    #[error("unsupported algorithm {0:?}: only RS256 is accepted")]
    UnsupportedAlgorithm(Algorithm),
    /// The header has no `kid` (401).
    #[error("token header has no kid")]
    MissingKid,
    /// No key with this `kid`, even after refetching the JWKS (401).
    #[error("unknown kid")]
    UnknownKid,
    /// The keys cannot be fetched right now (503).
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(Arc<JwksError>),
    /// The signature does not verify (401).
    #[error("invalid signature")]
    InvalidSignature,
    /// Signed, but the claims are not a JSON object we can read (400).
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// Signed by the tenant, but not a webhook (an access or ID token, say) (401).
    #[error("not a webhook token")]
    WrongTokenKind,
    /// `event_id` empty, too long or not visible ASCII (400).
    #[error("invalid event_id")]
    InvalidEventId,
    /// `timestamp` unreadable (401).
    #[error("invalid timestamp")]
    InvalidTimestamp,
    /// `timestamp` older than the replay window (401).
    #[error("event is older than the replay window")]
    Stale,
    /// `timestamp` further in the future than allowed (401).
    #[error("event timestamp is in the future")]
    Future,
    /// `exp` present and past (401).
    #[error("token expired")]
    Expired,
    /// `nbf` present and not reached (401).
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
    /// The `data` object, to be parsed by type.
    pub data: Box<RawValue>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(rename = "type")]
    event_type: Option<String>,
    event_id: Option<String>,
    timestamp: Option<serde_json::Value>,
    event_timestamp: Option<serde_json::Value>,
    source: Option<String>,
    ip_address: Option<String>,
    data: Option<Box<RawValue>>,
    exp: Option<f64>,
    nbf: Option<f64>,
    // Present on access and ID tokens.
    aud: Option<IgnoredAny>,
    azp: Option<IgnoredAny>,
    scp: Option<IgnoredAny>,
}

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
        crate::install_crypto_provider();
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

    /// Verifies one body. Only the header is read before the signature is checked.
    pub async fn verify(&self, body: &[u8]) -> Result<VerifiedToken, VerifyError> {
        let token = body.trim_ascii();
        if token.is_empty() {
            return Err(VerifyError::Malformed("empty body"));
        }
        if token.iter().filter(|b| **b == b'.').count() != 2 {
            return Err(VerifyError::Malformed("not a compact JWS"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| VerifyError::Malformed("unreadable token header"))?;
        if header.alg != Algorithm::RS256 {
            return Err(VerifyError::UnsupportedAlgorithm(header.alg));
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::MissingKid)?;
        let key = self.jwks.key(kid).await.map_err(|e| match e {
            KeyError::UnknownKid => VerifyError::UnknownKid,
            KeyError::Unavailable(err) => VerifyError::KeysUnavailable(err),
        })?;
        // The signature is checked by jsonwebtoken's own RS256 verifier; the claims are then
        // read once (`jsonwebtoken::decode` would re-read the header and parse the claims twice
        // more, for validations that are all off here: exp/nbf are checked below on our clock).
        let last_dot = token
            .iter()
            .rposition(|b| *b == b'.')
            .ok_or(VerifyError::Malformed("not a compact JWS"))?;
        let (message, signature) = (&token[..last_dot], &token[last_dot + 1..]);
        let signature =
            std::str::from_utf8(signature).map_err(|_| VerifyError::Malformed("bad signature"))?;
        let valid = jsonwebtoken::crypto::verify(signature, message, &key, Algorithm::RS256)
            .map_err(|e| match e.kind() {
                ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                    VerifyError::Malformed("bad base64 in token")
                }
                _ => VerifyError::InvalidSignature,
            })?;
        if !valid {
            return Err(VerifyError::InvalidSignature);
        }
        let first_dot = message
            .iter()
            .position(|b| *b == b'.')
            .ok_or(VerifyError::Malformed("not a compact JWS"))?;
        let payload = &message[first_dot + 1..];
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| VerifyError::Malformed("bad base64 in token"))?;
        let claims: Claims = serde_json::from_slice(&payload)
            .map_err(|e| VerifyError::InvalidClaims(e.to_string()))?;
        self.check_claims(claims)
    }

    fn check_claims(&self, c: Claims) -> Result<VerifiedToken, VerifyError> {
        let (Some(event_type), Some(event_id), Some(ts), Some(data)) =
            (c.event_type, c.event_id, c.timestamp, c.data)
        else {
            return Err(VerifyError::WrongTokenKind);
        };
        if c.aud.is_some() || c.azp.is_some() || c.scp.is_some() {
            return Err(VerifyError::WrongTokenKind);
        }
        let event_id = EventId::new(event_id).map_err(|_| VerifyError::InvalidEventId)?;
        let now = self.clock.now();
        let unix = now.unix_timestamp() as f64;
        if c.exp.is_some_and(|exp| exp <= unix) {
            return Err(VerifyError::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > unix) {
            return Err(VerifyError::NotYetValid);
        }
        let timestamp = parse_timestamp(&ts).map_err(|_| VerifyError::InvalidTimestamp)?;
        self.check_window(now, timestamp)?;
        let event_timestamp = c
            .event_timestamp
            .as_ref()
            .and_then(|v| parse_timestamp(v).ok());
        Ok(VerifiedToken {
            meta: EventMeta {
                event_id,
                event_type,
                source: c.source.map(Source::from),
                timestamp,
                event_timestamp,
                ip_address: c.ip_address,
                webhook_id: None,
            },
            data,
        })
    }

    fn check_window(&self, now: OffsetDateTime, ts: OffsetDateTime) -> Result<(), VerifyError> {
        if ts < now && (now - ts) > self.window.max_age {
            return Err(VerifyError::Stale);
        }
        if ts > now && (ts - now) > self.window.max_future {
            return Err(VerifyError::Future);
        }
        Ok(())
    }
}
