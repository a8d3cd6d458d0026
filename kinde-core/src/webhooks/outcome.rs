//! What happened to a delivery, and the HTTP answer for it: the one place statuses are chosen.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::verify::VerifyError;

/// `Retry-After` for a 503 whose cause has no better estimate, in seconds.
const RETRY_AFTER_SECS: u64 = 5;

/// What happened to one delivery. Its [`status`](Outcome::status) and [`code`](Outcome::code)
/// are the answer — the one status table, for every adapter:
///
/// | status | body | outcome |
/// |---|---|---|
/// | 200 | `{"status":"handled"}` | [`Outcome::Handled`] |
/// | 200 | `{"status":"duplicate"}` | [`Outcome::Duplicate`] |
/// | 200 | `{"status":"ignored"}` | [`Outcome::Ignored`] |
/// | 200 | `{"status":"superseded"}` | [`Outcome::Superseded`] |
/// | 200 | `{"status":"parked"}` | [`Outcome::Parked`] |
/// | 400 | `malformed_token`, `invalid_claims`, `invalid_event_id` | [`Outcome::Rejected`] |
/// | 400 | `invalid_webhook_id`, `body_read_failed` | [`Outcome::InvalidWebhookId`], [`Outcome::BodyReadFailed`] |
/// | 401 | `invalid_signature`, `unknown_kid`, `unsupported_algorithm`, `unsupported_crit`, `missing_kid`, `wrong_token_kind`, `stale_event`, `future_event`, `invalid_timestamp`, `token_expired`, `token_not_yet_valid` | [`Outcome::Rejected`] |
/// | 405 | `method_not_allowed` (with `Allow: POST`) | [`Outcome::MethodNotAllowed`] |
/// | 408 | `body_timeout` (with `Connection: close`) | [`Outcome::BodyTimeout`] |
/// | 409 | `in_progress` | [`Outcome::InProgress`] |
/// | 413 | `payload_too_large` | [`Outcome::PayloadTooLarge`] |
/// | 500 | `handler_failed` | [`Outcome::HandlerFailed`] |
/// | 500 | `unparseable_event` | [`Outcome::UnparseableEvent`] |
/// | 503 | `jwks_unavailable`, `kid_refetch_throttled` (with `Retry-After`) | [`Outcome::Rejected`] |
/// | 503 | `store_unavailable`, `too_many_deliveries` (with `Retry-After`) | [`Outcome::StoreUnavailable`], [`Outcome::TooManyDeliveries`] |
///
/// Error bodies are `{"error":"<code>"}`, success bodies `{"status":"<code>"}`, never internal
/// details. Kinde counts only 200 as delivered and retries anything else for ~36 hours.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// Verified, new, and the handler succeeded (200 `handled`).
    Handled,
    /// Verified, and already handled before (200 `duplicate`, no handler ran).
    Duplicate,
    /// Verified, but no handler and no fallback is registered for its type (200 `ignored`).
    Ignored,
    /// Verified, but a later event of its entity was applied (ordering on): no handler ran
    /// (200 `superseded`).
    Superseded,
    /// Verified, and set aside after failing too often (parking on): no handler ran this time
    /// (200 `parked`, so Kinde stops retrying; replay it with
    /// [`Webhooks::replay`](crate::Webhooks::replay)).
    Parked,
    /// Another delivery of this event is being handled right now (409 `in_progress`: Kinde
    /// retries later).
    InProgress,
    /// The token was refused; the error says why (400, 401, or 503 when we could not look).
    Rejected(VerifyError),
    /// The `webhook-id` header is longer than 256 bytes or not visible ASCII (400).
    InvalidWebhookId,
    /// The body exceeds the limit (413).
    PayloadTooLarge,
    /// Not a POST (405, with `Allow: POST`).
    MethodNotAllowed,
    /// The request body could not be read (the client went away mid-upload, say) (400).
    BodyReadFailed,
    /// The body did not arrive whole within the body deadline (408; the connection is closed).
    BodyTimeout,
    /// Too many deliveries are in flight already (503 with `Retry-After`).
    TooManyDeliveries,
    /// A typed handler's `data` does not match its schema (500: retried while the schema is
    /// fixed, never silently dropped).
    UnparseableEvent,
    /// The handler returned an error, panicked or timed out; the claim was released (500).
    HandlerFailed,
    /// The idempotency store cannot answer (503 with `Retry-After`: Kinde retries later).
    StoreUnavailable,
}

impl Outcome {
    /// The HTTP status for this outcome.
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Handled
            | Outcome::Duplicate
            | Outcome::Ignored
            | Outcome::Superseded
            | Outcome::Parked => StatusCode::OK,
            Outcome::InProgress => StatusCode::CONFLICT,
            Outcome::InvalidWebhookId | Outcome::BodyReadFailed => StatusCode::BAD_REQUEST,
            Outcome::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Outcome::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Outcome::UnparseableEvent | Outcome::HandlerFailed => StatusCode::INTERNAL_SERVER_ERROR,
            Outcome::StoreUnavailable | Outcome::TooManyDeliveries => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Outcome::Rejected(e) => rejected_status(e),
        }
    }

    /// A short stable code, sent as the response body and recorded in the span.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Superseded => "superseded",
            Outcome::Parked => "parked",
            Outcome::InProgress => "in_progress",
            Outcome::InvalidWebhookId => "invalid_webhook_id",
            Outcome::PayloadTooLarge => "payload_too_large",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::BodyReadFailed => "body_read_failed",
            Outcome::BodyTimeout => "body_timeout",
            Outcome::TooManyDeliveries => "too_many_deliveries",
            Outcome::UnparseableEvent => "unparseable_event",
            Outcome::HandlerFailed => "handler_failed",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::Rejected(e) => rejected_code(e),
        }
    }

    /// Whether a handler ran and succeeded.
    pub fn is_handled(&self) -> bool {
        matches!(self, Outcome::Handled)
    }

    /// Seconds to send in `Retry-After` (every 503 has one): whole seconds, rounded up, at
    /// least 1.
    ///
    /// Derived from the status, so no 503 (a new one included) can go without it.
    fn retry_after(&self) -> Option<u64> {
        if self.status() != StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        Some(match self {
            Outcome::TooManyDeliveries => 1,
            Outcome::Rejected(VerifyError::KidRefetchThrottled { retry_after }) => retry_after
                .as_secs()
                .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
                .max(1),
            _ => RETRY_AFTER_SECS,
        })
    }
}

/// The status of a refused token: one arm per variant, so a new one must be placed here.
fn rejected_status(e: &VerifyError) -> StatusCode {
    match e {
        VerifyError::Malformed(_) | VerifyError::InvalidClaims(_) | VerifyError::InvalidEventId => {
            StatusCode::BAD_REQUEST
        }
        VerifyError::UnsupportedAlgorithm(_)
        | VerifyError::UnsupportedCrit
        | VerifyError::MissingKid
        | VerifyError::UnknownKid
        | VerifyError::InvalidSignature
        | VerifyError::WrongTokenKind
        | VerifyError::InvalidTimestamp
        | VerifyError::Stale
        | VerifyError::Future
        | VerifyError::Expired
        | VerifyError::NotYetValid => StatusCode::UNAUTHORIZED,
        VerifyError::KeysUnavailable(_) | VerifyError::KidRefetchThrottled { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The code of a refused token.
fn rejected_code(e: &VerifyError) -> &'static str {
    match e {
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
    }
}

/// The answer to send for one request: status, headers and a short JSON body.
#[derive(Debug, Clone)]
#[must_use = "the answer to send"]
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

    /// The headers to send: `Content-Type`; `Allow` on a 405; `Retry-After` on a 503;
    /// `Connection: close` on a 408 (the rest of the body is not read).
    pub fn headers(&self) -> http::HeaderMap {
        let mut h = http::HeaderMap::with_capacity(2);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match &self.outcome {
            Outcome::MethodNotAllowed => {
                h.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            Outcome::BodyTimeout => {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            o => {
                if let Some(secs) = o.retry_after() {
                    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
            }
        }
        h
    }

    /// Whether the connection should be closed after this answer (a 408: the body was not
    /// read to its end).
    pub fn closes_connection(&self) -> bool {
        matches!(self.outcome, Outcome::BodyTimeout)
    }

    /// The JSON body: `{"status":"handled"}` on 200, `{"error":"<code>"}` otherwise. Never
    /// internal details.
    pub fn body(&self) -> Bytes {
        // The answers of every verified delivery, without a copy.
        let ready: &'static [u8] = match self.outcome {
            Outcome::Handled => br#"{"status":"handled"}"#,
            Outcome::Duplicate => br#"{"status":"duplicate"}"#,
            Outcome::Ignored => br#"{"status":"ignored"}"#,
            Outcome::Superseded => br#"{"status":"superseded"}"#,
            Outcome::Parked => br#"{"status":"parked"}"#,
            _ => b"",
        };
        if !ready.is_empty() {
            return Bytes::from_static(ready);
        }
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
    fn success_bodies_are_status_and_code() {
        for o in [
            Outcome::Handled,
            Outcome::Duplicate,
            Outcome::Ignored,
            Outcome::Superseded,
            Outcome::Parked,
        ] {
            let body = WebhookResponse::new(o.clone()).body();
            assert_eq!(body, format!("{{\"status\":\"{}\"}}", o.code()));
        }
        let body = WebhookResponse::new(Outcome::InProgress).body();
        assert_eq!(body, r#"{"error":"in_progress"}"#);
    }

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

    #[test]
    fn every_503_says_when_to_come_back() {
        for outcome in [
            Outcome::StoreUnavailable,
            Outcome::TooManyDeliveries,
            Outcome::Rejected(VerifyError::KeysUnavailable(std::sync::Arc::new(
                crate::verify::JwksError::Status(500),
            ))),
        ] {
            let resp = WebhookResponse::new(outcome);
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                resp.headers().contains_key(header::RETRY_AFTER),
                "{:?}",
                resp.outcome()
            );
        }
        let timeout = WebhookResponse::new(Outcome::BodyTimeout);
        assert_eq!(timeout.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(timeout.headers()[header::CONNECTION], "close");
    }
}
