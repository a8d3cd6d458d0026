//! The one place where a request for the webhook becomes kinde-core's answer, through
//! [`kinde_core::adapter`]: whose path it is, the precheck (method, declared length, a permit
//! of the in-flight pool), the payload read under the limit and the body deadline, and
//! `Webhooks::handle`. [`crate::WebhookEndpoint`] and [`crate::WebhookMiddleware`] both
//! answer through here.

use actix_web::dev::Payload;
use actix_web::{HttpRequest, HttpResponse};
use kinde_core::adapter::{self, Admission};
use kinde_core::Webhooks;

use crate::{body, convert};

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

/// A delivery let in: its permit and deadline, and its headers (converted once).
pub(crate) struct Admitted {
    admission: Admission,
    headers: http::HeaderMap,
}

/// What the precheck decided.
pub(crate) enum Precheck {
    /// Let in: read `payload` under the admission.
    Admitted(Admitted, Payload),
    /// Answered before reading anything (405, a declared oversize, 503
    /// `too_many_deliveries`); the answer holds the payload until it is written (see
    /// [`crate::body`]: the connection of an unread upload is closed).
    Answered(HttpResponse),
}

/// The precheck of `req` and its `payload`.
pub(crate) fn precheck(webhooks: &Webhooks, req: &HttpRequest, payload: Payload) -> Precheck {
    let headers = convert::request_headers(req.headers());
    match adapter::precheck(webhooks, &convert::method(req.method()), &headers) {
        Ok(admission) => Precheck::Admitted(Admitted { admission, headers }, payload),
        Err(early) => Precheck::Answered(body::hold_until_sent(convert::response(&early), payload)),
    }
}

/// Reads `payload` chunk by chunk, never past the limit nor the deadline, and answers with
/// kinde-core. The payload is actix-web's own stream: nothing is buffered here beyond what
/// kinde-core's reader keeps (at most the limit). The answer holds the payload until it is
/// written, so that one not read to its end (a 408, a 413) closes the connection.
pub(crate) async fn read_and_handle(admitted: Admitted, mut payload: Payload) -> HttpResponse {
    let answer = admitted
        .admission
        .receive(&admitted.headers, &mut payload)
        .await;
    body::hold_until_sent(convert::response(&answer), payload)
}
