//! What happened to a delivery, and the HTTP answer for it: the one place statuses are chosen.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::verify::VerifyError;

/// What happened to one delivery.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// Verified, new, and the handler succeeded (200).
    Handled,
    /// Verified, and already handled before (200, no handler ran).
    Duplicate,
    /// Verified, but no handler and no fallback is registered for its type (200).
    Ignored,
    /// Another delivery of this event is being handled right now (409: Kinde retries later).
    InProgress,
    /// The token was refused; the error says why (400, 401 or, for unreachable keys, 503).
    Rejected(VerifyError),
    /// The `webhook-id` header is longer than 256 bytes or not visible ASCII (400).
    InvalidWebhookId,
    /// The body exceeds the limit (413).
    PayloadTooLarge,
    /// Not a POST (405, with `Allow: POST`).
    MethodNotAllowed,
    /// The request body could not be read (the client went away mid-upload, say) (400).
    BodyReadFailed,
    /// A documented type whose `data` does not match its schema (500: retried while the
    /// schema is fixed, never silently dropped).
    UnparseableEvent,
    /// The handler returned an error, panicked or timed out; the claim was released (500).
    HandlerFailed,
    /// The idempotency store cannot answer (503: Kinde retries later).
    StoreUnavailable,
}

impl Outcome {
    /// The HTTP status for this outcome.
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Handled | Outcome::Duplicate | Outcome::Ignored => StatusCode::OK,
            Outcome::InProgress => StatusCode::CONFLICT,
            Outcome::InvalidWebhookId | Outcome::BodyReadFailed => StatusCode::BAD_REQUEST,
            Outcome::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Outcome::UnparseableEvent | Outcome::HandlerFailed => StatusCode::INTERNAL_SERVER_ERROR,
            Outcome::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Rejected(e) => match e {
                VerifyError::Malformed(_)
                | VerifyError::InvalidClaims(_)
                | VerifyError::InvalidEventId => StatusCode::BAD_REQUEST,
                VerifyError::KeysUnavailable(_) | VerifyError::KidRefetchThrottled { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                VerifyError::UnsupportedCrit => StatusCode::UNAUTHORIZED,
                _ => StatusCode::UNAUTHORIZED,
            },
        }
    }

    /// A short stable code, sent as the response body and recorded in the span.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::InProgress => "in_progress",
            Outcome::InvalidWebhookId => "invalid_webhook_id",
            Outcome::PayloadTooLarge => "payload_too_large",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::BodyReadFailed => "body_read_failed",
            Outcome::UnparseableEvent => "unparseable_event",
            Outcome::HandlerFailed => "handler_failed",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::Rejected(e) => match e {
                VerifyError::Malformed(_) => "malformed_token",
                VerifyError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
                VerifyError::UnsupportedCrit => "unsupported_crit",
                VerifyError::MissingKid => "missing_kid",
                VerifyError::KidRefetchThrottled { .. } => "kid_refetch_throttled",
                VerifyError::UnknownKid => "unknown_kid",
                VerifyError::KeysUnavailable(_) => "jwks_unavailable",
                VerifyError::InvalidSignature => "invalid_signature",
                VerifyError::InvalidClaims(_) => "invalid_claims",
                VerifyError::WrongTokenKind => "wrong_token_kind",
                VerifyError::InvalidEventId => "invalid_event_id",
                VerifyError::InvalidTimestamp => "invalid_timestamp",
                VerifyError::Stale => "stale_event",
                VerifyError::Future => "future_event",
                VerifyError::Expired => "token_expired",
                VerifyError::NotYetValid => "token_not_yet_valid",
            },
        }
    }

    /// Whether a handler ran and succeeded.
    pub fn handled(&self) -> bool {
        matches!(self, Outcome::Handled)
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: std::time::Duration) -> HeaderValue {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    HeaderValue::from(secs.max(1))
}

/// The answer to send for one request: status, headers and a short JSON body.
#[derive(Debug, Clone)]
pub struct WebhookResponse {
    outcome: Outcome,
}

impl WebhookResponse {
    pub(crate) fn new(outcome: Outcome) -> Self {
        Self { outcome }
    }

    /// What happened.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.outcome.status()
    }

    /// The headers to send: `Content-Type`, `Allow` on a 405, and `Retry-After` (whole
    /// seconds, at least 1) when the answer says when to come back.
    pub fn headers(&self) -> http::HeaderMap {
        let mut h = http::HeaderMap::with_capacity(2);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self.outcome, Outcome::MethodNotAllowed) {
            h.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        if let Outcome::Rejected(VerifyError::KidRefetchThrottled { retry_after }) = &self.outcome {
            h.insert(header::RETRY_AFTER, retry_after_secs(*retry_after));
        }
        h
    }

    /// The JSON body: `{"status":"handled"}` on 200, `{"error":"<code>"}` otherwise. Never
    /// internal details.
    pub fn body(&self) -> Bytes {
        let key = if self.status().is_success() {
            "status"
        } else {
            "error"
        };
        Bytes::from(format!("{{\"{key}\":\"{}\"}}", self.outcome.code()))
    }

    /// As an `http::Response`.
    pub fn into_http(self) -> http::Response<Bytes> {
        let mut resp = http::Response::new(self.body());
        *resp.status_mut() = self.status();
        *resp.headers_mut() = self.headers();
        resp
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        let header = |ms: u64| {
            let resp = WebhookResponse::new(Outcome::Rejected(VerifyError::KidRefetchThrottled {
                retry_after: Duration::from_millis(ms),
            }));
            assert_eq!(
                (resp.status(), resp.outcome().code()),
                (StatusCode::SERVICE_UNAVAILABLE, "kid_refetch_throttled")
            );
            resp.headers()[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header(0), "1");
        assert_eq!(header(1), "1");
        assert_eq!(header(1000), "1");
        assert_eq!(header(1001), "2");
        assert_eq!(header(9_500), "10");
        assert_eq!(header(u64::MAX), (u64::MAX / 1000 + 1).to_string());
        let crit = WebhookResponse::new(Outcome::Rejected(VerifyError::UnsupportedCrit));
        assert_eq!(
            (crit.status(), crit.outcome().code()),
            (StatusCode::UNAUTHORIZED, "unsupported_crit")
        );
        assert!(!crit.headers().contains_key(header::RETRY_AFTER));
    }
}
