//! The one place where a request for the webhook becomes kinde-core's answer, through
//! [`kinde_core::adapter`]: the precheck (method, declared length, a permit of the in-flight
//! pool), then the body read under the limit and the body deadline, then `Webhooks::handle`.
//! [`crate::WebhookEndpoint`] and [`crate::WebhookService`] both answer through [`answer`].

use bytes::Buf as _;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt as _;
use kinde_core::{adapter, WebhookResponse, Webhooks};

use crate::{EndpointBody, EndpointFuture};

/// The error type a request body may fail with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// kinde-core's answer to `req`. What the precheck refuses (405, a declared oversize, 503
/// `too_many_deliveries`) is answered at once, without reading or boxing anything; otherwise
/// the body is read chunk by chunk, never past the limit nor the deadline, holding the permit
/// until the answer is ready.
///
/// A `408 body_timeout` carries `Connection: close`, which makes hyper close the connection
/// after the answer (hyper also closes any connection whose request body was left unread).
pub(crate) fn answer<B>(webhooks: &Webhooks, req: Request<B>) -> EndpointFuture
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let admission = match adapter::precheck(webhooks, req.method(), req.headers()) {
        Ok(admission) => admission,
        Err(early) => return EndpointFuture::ready(to_http(early)),
    };
    EndpointFuture::reading(async move {
        let (parts, body) = req.into_parts();
        // Each data frame as `Bytes` (no copy when it is `Bytes` already, as with hyper's).
        let chunks = body
            .map_frame(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
            .map_err(Into::<BoxError>::into)
            .into_data_stream();
        to_http(admission.receive(&parts.headers, chunks).await)
    })
}

fn to_http(answer: WebhookResponse) -> Response<EndpointBody> {
    answer.into_http().map(EndpointBody::new)
}
