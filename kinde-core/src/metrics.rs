//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): the
//! library records, the application picks the exporter (and installs the recorder). Without the
//! feature, or without a recorder, recording costs nothing.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `kinde_webhook_deliveries_total` | counter | `outcome` (the answer's code: `handled`, `duplicate`, `invalid_signature`, …), `event_type` (the verified type, or `unverified`) |
//! | `kinde_webhook_handler_duration_seconds` | histogram | `event_type` |
//! | `kinde_webhook_jwks_fetches_total` | counter | `result` (`ok` / `error`) |
//! | `kinde_webhook_store_errors_total` | counter | — |
//!
//! Label values are bounded: an answer code, or a type string signed by Kinde (1–256 visible
//! ASCII bytes); never an id, never an unverified type.

/// `kinde_webhook_deliveries_total`.
pub const DELIVERIES_TOTAL: &str = "kinde_webhook_deliveries_total";
/// `kinde_webhook_handler_duration_seconds`.
pub const HANDLER_DURATION_SECONDS: &str = "kinde_webhook_handler_duration_seconds";
/// `kinde_webhook_jwks_fetches_total`.
pub const JWKS_FETCHES_TOTAL: &str = "kinde_webhook_jwks_fetches_total";
/// `kinde_webhook_store_errors_total`.
pub const STORE_ERRORS_TOTAL: &str = "kinde_webhook_store_errors_total";
/// `kinde_webhook_parked_total`.
pub const PARKED_TOTAL: &str = "kinde_webhook_parked_total";

use std::borrow::Cow;

/// A verified event type as a label value: borrowed for Kinde's documented types (no copy per
/// delivery), owned for any other.
pub(crate) fn type_label(event_type: &str) -> Cow<'static, str> {
    crate::event::KNOWN_EVENT_TYPES
        .iter()
        .find(|known| **known == event_type)
        .map_or_else(
            || Cow::Owned(event_type.to_owned()),
            |known| Cow::Borrowed(*known),
        )
}

/// One answered delivery; `event_type` is `None` when nothing was verified.
#[inline]
pub(crate) fn delivery(outcome: &'static str, event_type: Option<Cow<'static, str>>) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        DELIVERIES_TOTAL,
        "outcome" => outcome,
        "event_type" => event_type.unwrap_or(Cow::Borrowed("unverified")),
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (outcome, event_type);
}

/// How long a handler ran.
#[inline]
pub(crate) fn handler_duration(event_type: Cow<'static, str>, elapsed: std::time::Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(HANDLER_DURATION_SECONDS, "event_type" => event_type)
        .record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (event_type, elapsed);
}

/// One JWKS fetch.
#[inline]
pub(crate) fn jwks_fetch(ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(JWKS_FETCHES_TOTAL, "result" => if ok { "ok" } else { "error" }).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = ok;
}

/// One store operation that failed.
#[inline]
pub(crate) fn store_error() {
    #[cfg(feature = "metrics")]
    metrics::counter!(STORE_ERRORS_TOTAL).increment(1);
}

/// One event parked.
#[inline]
pub(crate) fn parked(event_type: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(PARKED_TOTAL, "event_type" => type_label(event_type)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event_type;
}
