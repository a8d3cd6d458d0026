use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use kinde_core::{WebhookResponse, Webhooks};
use tower_service::Service;

use crate::{ResponseBody, ResponseFuture};

/// The service made by [`crate::KindeWebhookLayer`].
#[derive(Debug, Clone)]
pub struct KindeWebhookService<S> {
    inner: S,
    webhooks: Webhooks,
}

impl<S> KindeWebhookService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, webhooks: Webhooks) -> Self {
        Self { inner, webhooks }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

pub(crate) fn to_http(resp: WebhookResponse) -> Response<Full<Bytes>> {
    resp.into_http().map(Full::new)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for KindeWebhookService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: std::error::Error + Send + Sync + 'static,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if req.uri().path() != self.webhooks.path() {
            return ResponseFuture::inner(self.inner.call(req));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(early) = self.webhooks.precheck(req.method(), declared) {
            return ResponseFuture::ready(to_http(early));
        }
        let webhooks = self.webhooks.clone();
        ResponseFuture::webhook(async move {
            let (parts, body) = req.into_parts();
            let body = match Limited::new(body, webhooks.body_limit()).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<LengthLimitError>() => {
                    return to_http(webhooks.payload_too_large())
                }
                Err(_) => return to_http(webhooks.body_read_failed()),
            };
            to_http(webhooks.handle(&parts.headers, &body).await)
        })
    }
}
