//! The one place where a request for the webhook becomes kinde-core's answer: the precheck
//! (method, declared length), the body read up to kinde-core's limit, and `Webhooks::handle`.
//! [`crate::WebhookEndpoint`] and [`crate::WebhookService`] both answer through [`answer`].

use bytes::Bytes;
use http::{header, HeaderMap, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use kinde_core::{WebhookResponse, Webhooks};

use crate::{EndpointBody, EndpointFuture};

/// The error type a request body may fail with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// kinde-core's answer to `req`. 405 and 413 for a declared oversize are answered at once,
/// without reading or boxing anything; otherwise the body is read, never past the limit.
pub(crate) fn answer<B>(webhooks: &Webhooks, req: Request<B>) -> EndpointFuture
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if let Some(early) = webhooks.precheck(req.method(), content_length(req.headers())) {
        return EndpointFuture::ready(to_http(early));
    }
    let webhooks = webhooks.clone();
    EndpointFuture::reading(async move {
        let (parts, body) = req.into_parts();
        let answer = match Limited::new(body, webhooks.body_limit()).collect().await {
            Ok(collected) => webhooks.handle(&parts.headers, &collected.to_bytes()).await,
            Err(e) if e.is::<LengthLimitError>() => webhooks.payload_too_large(),
            Err(_) => webhooks.body_read_failed(),
        };
        to_http(answer)
    })
}

/// The declared `Content-Length`, if it is a number.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

fn to_http(answer: WebhookResponse) -> Response<EndpointBody> {
    answer.into_http().map(|b: Bytes| EndpointBody::new(b))
}
