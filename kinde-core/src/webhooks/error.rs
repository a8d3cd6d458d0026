//! What `WebhooksBuilder::build` refuses.

use std::time::Duration;

use crate::verify::{IssuerError, JwksError};

/// An invalid configuration, reported by [`WebhooksBuilder::build`](super::WebhooksBuilder::build).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither an issuer nor a key source was given.
    #[error("no key source: call .issuer(\"https://<tenant>.kinde.com\") or .key_source(..)")]
    NoKeySource,
    /// Both a key source and an issuer (or JWKS URL) were given: one of them would be ignored.
    #[error("both .key_source(..) and .issuer(..)/.jwks_url(..) are set: keep one")]
    TwoKeySources,
    /// The issuer or JWKS URL is invalid.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// The HTTP client for the JWKS could not be built.
    #[error("cannot build the JWKS client: {0}")]
    Jwks(#[from] JwksError),
    /// The HTTP JWKS fetcher is compiled out (`http-jwks` feature off).
    #[error("fetching keys from an issuer needs the `http-jwks` feature; use .key_source(..)")]
    HttpJwksDisabled,
    /// Two handlers for one type. With release-on-failure a retry would run the first one
    /// again whenever the second failed: compose inside one handler instead.
    #[error("a handler for `{0}` is already registered: register one handler per type and compose inside it")]
    DuplicateHandler(String),
    /// A second fallback.
    #[error("a fallback handler is already registered")]
    DuplicateFallback,
    /// Handled events must be remembered at least as long as a token is accepted.
    #[error("done TTL ({done_ttl:?}) must be at least the replay window ({window:?}), or a replayed token could run twice")]
    DoneTtlShorterThanWindow {
        /// Configured done TTL.
        done_ttl: Duration,
        /// Replay window's max age plus its future allowance.
        window: Duration,
    },
    /// A handler could outlive its claim and overlap its own retry.
    #[error("handler timeout ({timeout:?}) must be shorter than the processing claim TTL ({processing_ttl:?})")]
    HandlerTimeoutTooLong {
        /// Handler timeout.
        timeout: Duration,
        /// Processing claim TTL.
        processing_ttl: Duration,
    },
    /// A limit or duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The path does not start with `/`.
    #[error("webhook path `{0}` must start with `/`")]
    InvalidPath(String),
}
