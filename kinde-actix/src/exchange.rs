//! The one place where a request for the webhook becomes kinde-core's answer: whose path it
//! is, the precheck (method, declared length), the payload read up to kinde-core's limit, and
//! `Webhooks::handle`. [`crate::WebhookEndpoint`] and [`crate::WebhookMiddleware`] both answer
//! through here.

use actix_web::dev::Payload;
use actix_web::{HttpRequest, HttpResponse};
use kinde_core::Webhooks;

use crate::body::{read_limited, ReadError};
use crate::convert;

/// Whether actix-web routed this request on its path as sent. actix-web percent-decodes a
/// path (all but `%`, `/` and `+`) before matching routes and scopes, so `/kinde/%77ebhook`
/// would reach `/kinde/webhook`; under the exact path policy such a spelling is not the
/// webhook's.
pub(crate) fn routed_verbatim(req: &HttpRequest) -> bool {
    req.path() == req.match_info().as_str()
}

/// Whether the middleware takes `req`: the path below the mount point (what enclosing scopes
/// have not consumed) is exactly [`Webhooks::path`], and nothing was percent-decoded.
pub(crate) fn is_webhook_path(webhooks: &Webhooks, req: &HttpRequest) -> bool {
    routed_verbatim(req) && req.match_info().unprocessed() == webhooks.path()
}

/// The answer before reading anything (405, a declared oversize), if any.
pub(crate) fn precheck(webhooks: &Webhooks, req: &HttpRequest) -> Option<HttpResponse> {
    let early = webhooks.precheck(
        &convert::method(req.method()),
        convert::content_length(req.headers()),
    )?;
    Some(convert::response(&early))
}

/// Reads `payload` chunk by chunk, never past the limit, and answers with kinde-core.
pub(crate) async fn read_and_handle(
    webhooks: Webhooks,
    req: HttpRequest,
    payload: Payload,
) -> HttpResponse {
    let answer = match read_limited(payload, webhooks.body_limit()).await {
        Ok(body) => {
            let headers = convert::request_headers(req.headers());
            webhooks.handle(&headers, &body).await
        }
        Err(ReadError::TooLarge) => webhooks.payload_too_large(),
        Err(ReadError::Failed) => webhooks.body_read_failed(),
    };
    convert::response(&answer)
}
