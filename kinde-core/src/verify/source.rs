//! Where the JWKS comes from: a [`KeySource`] trait, the HTTPS fetcher and a static key set.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// Why a JWKS could not be fetched or used. Deliveries whose key depends on it get 503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The issuer answered with a non-200 status (redirects included: they are never followed).
    #[error("JWKS endpoint answered HTTP {0}")]
    Status(u16),
    /// Connecting, sending or reading failed.
    #[error("JWKS request failed: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The whole fetch took longer than the configured timeout.
    #[error("JWKS request timed out after {0:?}")]
    Timeout(Duration),
    /// The response body was larger than the configured bound.
    #[error("JWKS response exceeds {limit} bytes")]
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The body was not a JSON object with a `keys` array.
    #[error("JWKS is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// More keys than the configured bound.
    #[error("JWKS holds {count} keys, more than the bound of {limit}")]
    TooManyKeys {
        /// Keys in the document.
        count: usize,
        /// The bound.
        limit: usize,
    },
    /// No key in the set is an RS256 signing key of 2048–4096 bits with a `kid`.
    #[error("JWKS holds no usable RS256 signing key")]
    NoUsableKeys,
}

/// A JWKS document as fetched, with the freshness the source reported.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchedJwks {
    /// The raw JSON document.
    pub body: Bytes,
    /// `Cache-Control: max-age`, when the source sent one.
    pub max_age: Option<Duration>,
}

impl FetchedJwks {
    /// A document with no freshness information.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            max_age: None,
        }
    }
}

/// Fetches the issuer's JWKS. Implemented by [`HttpKeySource`] and [`StaticKeySource`]; implement
/// it to load keys from somewhere else.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// Fetches the current key set.
    async fn fetch(&self) -> Result<FetchedJwks, JwksError>;

    /// Whether every fetch returns the same key set (keys pinned in configuration): then a
    /// `kid` missing from it is unknown at once, with no refetch. `false` by default.
    fn is_static(&self) -> bool {
        false
    }
}

/// A fixed JWKS document, e.g. for air-gapped tests or keys pinned in configuration.
#[derive(Debug, Clone)]
pub struct StaticKeySource {
    body: Bytes,
}

impl StaticKeySource {
    /// Serves this JWKS JSON document on every fetch.
    pub fn new(jwks_json: impl Into<Bytes>) -> Self {
        Self {
            body: jwks_json.into(),
        }
    }
}

#[async_trait]
impl KeySource for StaticKeySource {
    async fn fetch(&self) -> Result<FetchedJwks, JwksError> {
        Ok(FetchedJwks::new(self.body.clone()))
    }

    fn is_static(&self) -> bool {
        true
    }
}

/// Reads `max-age` out of a `Cache-Control` value; `no-cache`/`no-store` read as zero.
#[cfg_attr(not(feature = "http-jwks"), allow(dead_code))]
pub(crate) fn cache_control_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            max_age = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(feature = "http-jwks")]
mod http_source {
    use super::*;
    use url::Url;

    /// Fetches the JWKS over HTTPS (reqwest + rustls): no redirects, a total timeout (default
    /// 5 s) and a bound on the body size (default 128 KiB), read as it streams.
    ///
    /// [`WebhooksBuilder::issuer`](crate::WebhooksBuilder::issuer) uses one with the defaults;
    /// to tune them, build one and pass it as the key source:
    ///
    /// ```
    /// use std::time::Duration;
    /// use kinde_core::verify::HttpKeySource;
    /// use kinde_core::Webhooks;
    ///
    /// let keys = HttpKeySource::for_issuer("acme.kinde.com")
    ///     .unwrap()
    ///     .fetch_timeout(Duration::from_secs(2))
    ///     .max_response_bytes(64 * 1024)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(keys.url().as_str(), "https://acme.kinde.com/.well-known/jwks");
    /// let webhooks = Webhooks::builder().key_source(keys).build().unwrap();
    /// # let _ = webhooks;
    /// ```
    #[derive(Debug, Clone)]
    pub struct HttpKeySource {
        client: reqwest::Client,
        url: Url,
        timeout: Duration,
        max_bytes: usize,
    }

    /// Settings of an [`HttpKeySource`] before it is built.
    #[derive(Debug, Clone)]
    #[must_use]
    pub struct HttpKeySourceBuilder {
        url: Url,
        timeout: Duration,
        max_bytes: usize,
    }

    impl HttpKeySourceBuilder {
        /// The whole fetch's bound: connecting, the response and its body (default 5 s).
        pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// The largest JWKS read, in bytes (default 128 KiB).
        pub fn max_response_bytes(mut self, bytes: usize) -> Self {
            self.max_bytes = bytes;
            self
        }

        /// Builds the source (its HTTP client).
        pub fn build(self) -> Result<HttpKeySource, JwksError> {
            HttpKeySource::with_limits(self.url, self.timeout, self.max_bytes)
        }
    }

    impl HttpKeySource {
        /// The default fetch timeout.
        pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
        /// The default bound on the response body.
        pub const DEFAULT_MAX_BYTES: usize = 128 * 1024;

        /// A source for `url` with the default timeout and size bound.
        pub fn new(url: Url) -> Result<Self, JwksError> {
            Self::builder(url).build()
        }

        /// Settings for a source fetching `url`.
        pub fn builder(url: Url) -> HttpKeySourceBuilder {
            HttpKeySourceBuilder {
                url,
                timeout: Self::DEFAULT_TIMEOUT,
                max_bytes: Self::DEFAULT_MAX_BYTES,
            }
        }

        /// Settings for a source fetching an issuer's `/.well-known/jwks` (the issuer as
        /// [`WebhooksBuilder::issuer`](crate::WebhooksBuilder::issuer) takes it).
        pub fn for_issuer(issuer: &str) -> Result<HttpKeySourceBuilder, super::super::IssuerError> {
            let issuer = super::super::normalize_issuer(issuer)?;
            Ok(Self::builder(super::super::jwks_url(
                &issuer,
                super::super::JwksPath::Jwks,
            )))
        }

        fn with_limits(url: Url, timeout: Duration, max_bytes: usize) -> Result<Self, JwksError> {
            if timeout.is_zero() || max_bytes == 0 {
                return Err(JwksError::Transport(
                    "the JWKS fetch timeout and size bound must be greater than zero".into(),
                ));
            }
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(timeout)
                .timeout(timeout)
                .user_agent(concat!("kinde-webhooks/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| JwksError::Transport(Box::new(e)))?;
            Ok(Self {
                client,
                url,
                timeout,
                max_bytes,
            })
        }

        /// The URL keys are fetched from.
        pub fn url(&self) -> &Url {
            &self.url
        }

        async fn fetch_inner(&self) -> Result<FetchedJwks, JwksError> {
            let transport = |e: reqwest::Error| {
                if e.is_timeout() {
                    JwksError::Timeout(self.timeout)
                } else {
                    JwksError::Transport(Box::new(e))
                }
            };
            let mut resp = self
                .client
                .get(self.url.clone())
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(transport)?;
            if resp.status() != reqwest::StatusCode::OK {
                return Err(JwksError::Status(resp.status().as_u16()));
            }
            let too_large = JwksError::TooLarge {
                limit: self.max_bytes,
            };
            if resp
                .content_length()
                .is_some_and(|n| n > self.max_bytes as u64)
            {
                return Err(too_large);
            }
            let max_age = resp
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(cache_control_max_age);
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(transport)? {
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(too_large);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FetchedJwks {
                body: body.into(),
                max_age,
            })
        }
    }

    #[async_trait]
    impl KeySource for HttpKeySource {
        async fn fetch(&self) -> Result<FetchedJwks, JwksError> {
            // The client timeout covers a response that never starts; this one also bounds a
            // body that trickles in forever.
            tokio::time::timeout(self.timeout, self.fetch_inner())
                .await
                .map_err(|_| JwksError::Timeout(self.timeout))?
        }
    }
}

#[cfg(feature = "http-jwks")]
pub use http_source::{HttpKeySource, HttpKeySourceBuilder};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read() {
        assert_eq!(
            cache_control_max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(cache_control_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(cache_control_max_age("public"), None);
        assert_eq!(cache_control_max_age("max-age=abc"), None);
    }
}
