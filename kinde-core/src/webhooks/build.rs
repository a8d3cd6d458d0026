//! Checking a configuration and building the receiver from it.

use std::sync::Arc;

use crate::store::MemoryStore;
use crate::verify::{check_url, jwks_url, normalize_issuer, JwksCache, KeySource, Verifier};

use super::{BuildError, Inner, Webhooks, WebhooksBuilder};

impl<S: Clone + Send + Sync + 'static> WebhooksBuilder<S> {
    fn key_source_or_http(&mut self) -> Result<Arc<dyn KeySource>, BuildError> {
        if let Some(source) = self.key_source.take() {
            if self.issuer.is_some() || self.jwks_url.is_some() {
                return Err(BuildError::TwoKeySources);
            }
            return Ok(source);
        }
        let url = match (&self.jwks_url, &self.issuer) {
            (Some(url), _) => check_url(url)?,
            (None, Some(issuer)) => jwks_url(&normalize_issuer(issuer)?, self.jwks_path),
            (None, None) => return Err(BuildError::NoKeySource),
        };
        #[cfg(feature = "http-jwks")]
        {
            Ok(Arc::new(crate::verify::HttpKeySource::new(url)?))
        }
        #[cfg(not(feature = "http-jwks"))]
        {
            let _ = url;
            Err(BuildError::HttpJwksDisabled)
        }
    }

    /// Validates the configuration and builds the receiver.
    pub fn build(mut self) -> Result<Webhooks, BuildError> {
        let handlers = std::mem::take(&mut self.handlers).build(&self.state)?;
        self.max_in_flight = self.max_in_flight.min(tokio::sync::Semaphore::MAX_PERMITS);
        for (value, name) in [
            (self.body_limit, "body limit"),
            (self.max_in_flight, "max deliveries in flight"),
            (self.memory.capacity_limit(), "memory store capacity"),
            (self.park_after.map_or(1, |n| n as usize), "park_after"),
            (self.park_limits.events, "parked events limit"),
            (self.park_limits.bytes, "parked bytes limit"),
            (self.jwks.max_keys, "JWKS max keys"),
        ] {
            if value == 0 {
                return Err(BuildError::Zero(name));
            }
        }
        for (value, name) in [
            (self.processing_ttl, "processing TTL"),
            (self.handler_timeout, "handler timeout"),
            (self.body_timeout, "body timeout"),
        ] {
            if value.is_zero() {
                return Err(BuildError::Zero(name));
            }
        }
        if !self.path.starts_with('/') {
            return Err(BuildError::InvalidPath(self.path));
        }
        let window = self.window.max_age + self.window.max_future;
        if self.done_ttl < window {
            return Err(BuildError::DoneTtlShorterThanWindow {
                done_ttl: self.done_ttl,
                window,
            });
        }
        if self.handler_timeout >= self.processing_ttl {
            return Err(BuildError::HandlerTimeoutTooLong {
                timeout: self.handler_timeout,
                processing_ttl: self.processing_ttl,
            });
        }
        let source = self.key_source_or_http()?;
        let jwks = Arc::new(JwksCache::new(source, self.jwks.clone()));
        let store = self
            .store
            .take()
            .unwrap_or_else(|| Arc::new(MemoryStore::new(self.memory.clone())));
        Ok(Webhooks {
            inner: Arc::new(Inner {
                verifier: Verifier::new(jwks, self.window, self.clock),
                store,
                handlers,
                permits: Arc::new(tokio::sync::Semaphore::new(self.max_in_flight)),
                ordering: self.ordering,
                park_after: self.park_after,
                park_limits: self.park_limits,
                body_timeout: self.body_timeout,
                processing_ttl: self.processing_ttl,
                done_ttl: self.done_ttl,
                handler_timeout: self.handler_timeout,
                body_limit: self.body_limit,
                path: self.path,
            }),
        })
    }
}
