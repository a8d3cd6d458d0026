//! [`WebhookService`]: the path-intercepting service made by [`crate::WebhookLayer`].

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use kinde_core::Webhooks;
use tower_service::Service;

use crate::exchange::{self, BoxError};
use crate::{ResponseBody, ResponseFuture, WebhookLayer};

/// Answers requests for [`Webhooks::path`] with kinde-core and passes every other request to
/// the inner service, untouched (its body neither read nor boxed).
///
/// Made by [`WebhookLayer`]; see there for where it goes. The path is the one this service
/// is handed (`req.uri().path()`), compared exactly: see the crate docs, "Path semantics".
#[derive(Debug, Clone)]
pub struct WebhookService<S> {
    inner: S,
    webhooks: Webhooks,
}

impl<S> WebhookService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, webhooks: Webhooks) -> Self {
        Self { inner, webhooks }
    }

    /// The layer making this service (as tower-http's services have it):
    /// `WebhookService::layer(webhooks)` is [`WebhookLayer::new`]`(webhooks)`.
    pub fn layer(webhooks: Webhooks) -> WebhookLayer {
        WebhookLayer::new(webhooks)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WebhookService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if req.uri().path() == self.webhooks.path() {
            ResponseFuture::webhook(exchange::answer(&self.webhooks, req))
        } else {
            ResponseFuture::inner(self.inner.call(req))
        }
    }
}
