//! The framework-free half of the mount proof: the probe request, the check that an answer
//! came from kinde-webhooks, and a real HTTP/1.1 probe of a listening server.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};

mod error;

pub use error::MountError;
use error::{Failure, What};

/// The probe's body: not a JWT (no dots), so kinde-webhooks answers `malformed_token` before
/// looking up a key, touching the store or running a handler.
pub const PROBE_BODY: &str = "kinde-webhooks-mount-probe";

/// The `webhook-id` header the probe carries, as a Kinde delivery does.
pub const PROBE_WEBHOOK_ID: &str = "msg_kinde_mount_probe";

/// The longest the proof waits for an answer. Generous: an answer that takes longer is a
/// failure to answer, not a slow machine.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many bytes of a foreign answer's body a [`MountError`] quotes.
const QUOTED_BODY: usize = 120;

/// What to do about a misplaced mounting, whatever the framework.
const GENERAL_ADVICE: &str = "How to fix: mount the endpoint where the router decides the path \
    — axum: `.route_service(\"<path>\", kinde_tower::WebhookEndpoint::new(webhooks))`; \
    actix-web: `.service(web::resource(\"<path>\").to(kinde_actix::WebhookEndpoint::new(webhooks)))`. \
    A path-matching layer or middleware (`WebhookLayer`, `WebhookMiddleware`) must be the outermost \
    one: the last `.layer(..)` of the outermost axum router, or `.wrap(..)` on the actix `App`. \
    A tonic server needs `Server::builder().accept_http1(true)`: Kinde POSTs over HTTP/1.1.";

/// The mount proof's probe for one path: the request to send, and the check of the answer.
///
/// The adapters drive the probe through an app: `kinde_tower::testing::assert_mounted(app,
/// path)` (any tower service, e.g. an axum `Router`, no socket) and
/// `kinde_actix::testing::assert_mounted(app, path)` (an actix-web `App`). Here is what they share:
///
/// - [`MountProbe::request`]: a POST of a **malformed token** to the path, with Kinde's headers.
///   kinde-webhooks refuses it before any key, store or handler is involved, so the probe is
///   safe against any app, in any environment;
/// - [`MountProbe::check`]: whether the answer is kinde-webhooks' own —
///   `400 {"error":"malformed_token"}` with `Content-Type: application/json`. Anything else (the
///   app's 404, a fallback's 200, an auth layer's 401, a route that does not take POST) is a
///   [`MountError`] saying what answered instead and how to fix the mounting;
/// - [`MountProbe::send_http1`]: the probe over a real HTTP/1.1 connection to a running server,
///   which also catches what only the transport shows (a server that speaks only HTTP/2, as
///   tonic does without `accept_http1(true)`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use kinde_core::testing::MountProbe;
/// use kinde_core::Webhooks;
///
/// let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
/// let probe = MountProbe::new("/kinde/webhook");
/// // Framework-free: hand the probe's headers and body to the receiver itself.
/// let req = probe.request();
/// let answer = webhooks.handle(req.headers(), req.body()).await;
/// assert!(probe.check(answer.status(), &answer.headers(), &answer.body()).is_ok());
/// // An app's own 404 is not ours.
/// let err = probe
///     .check(http::StatusCode::NOT_FOUND, &http::HeaderMap::new(), b"")
///     .unwrap_err();
/// assert!(err.to_string().contains("404"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MountProbe {
    path: String,
    advice: &'static str,
}

impl MountProbe {
    /// A probe of `path`, the path Kinde POSTs to (the path of the URL registered in Kinde,
    /// e.g. `/kinde/webhook`).
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            advice: GENERAL_ADVICE,
        }
    }

    /// Replaces the "how to fix" part of failure messages (an adapter names its own
    /// mounting forms). `<path>` in the text is replaced by the probed path.
    pub fn advice(mut self, advice: &'static str) -> Self {
        self.advice = advice;
        self
    }

    /// The probed path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The probe request: `POST <path>` with Kinde's headers (`Content-Type: application/jwt`,
    /// a `webhook-id`, its `Content-Length`) and a malformed token as the body.
    ///
    /// The URI is the path alone (origin form), as a server hands requests to its app.
    pub fn request(&self) -> Request<Bytes> {
        let mut req = Request::new(Bytes::from_static(PROBE_BODY.as_bytes()));
        *req.method_mut() = Method::POST;
        // A path that is no URI is reported by `check` as the app would never see it: the
        // request then goes to `/`, which no webhook mounting answers with our code.
        *req.uri_mut() = self.path.parse().unwrap_or_default();
        let h = req.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwt"),
        );
        h.insert("webhook-id", HeaderValue::from_static(PROBE_WEBHOOK_ID));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(PROBE_BODY.len()));
        req
    }

    /// Checks one answer to [`Self::request`]: `Ok` only for kinde-webhooks' own
    /// `400 {"error":"malformed_token"}` sent as `application/json`.
    pub fn check(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), MountError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let ours_code = our_code(content_type.as_deref(), body);
        if status == StatusCode::BAD_REQUEST && ours_code.as_deref() == Some("malformed_token") {
            return Ok(());
        }
        Err(self.error(What::Answered {
            status,
            content_type,
            body: quote(body),
            ours_code,
        }))
    }

    /// The error for a probe that got no answer at all: `why` is the transport's or the
    /// service's error.
    pub fn no_answer(&self, why: impl fmt::Display) -> MountError {
        self.error(What::NoAnswer(why.to_string()))
    }

    /// Runs `answer` (one trip of the probe through an app) for at most [`PROBE_TIMEOUT`]; an
    /// error of the app's service or the timeout become a [`MountError`].
    pub async fn within<T, E: fmt::Display>(
        &self,
        answer: impl Future<Output = Result<T, E>>,
    ) -> Result<T, MountError> {
        match tokio::time::timeout(PROBE_TIMEOUT, answer).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(self.no_answer(format_args!("the app failed to answer: {e}"))),
            Err(_) => Err(self.no_answer(format_args!(
                "no answer within {} s",
                PROBE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Sends the probe over a real HTTP/1.1 connection (as Kinde does) to a server listening on
    /// `addr`, and checks the answer. Catches what an in-process proof cannot: a server that
    /// does not speak HTTP/1.1 (tonic without `accept_http1(true)`), or nothing listening.
    pub async fn send_http1(&self, addr: SocketAddr) -> Result<(), MountError> {
        let (status, headers, body) = self
            .within(exchange_http1(addr, self.request()))
            .await
            .map_err(|e| match &e.0.what {
                What::NoAnswer(why) => self.no_answer(format_args!(
                    "no HTTP/1.1 answer from {addr}: {why}. Kinde POSTs over HTTP/1.1: a server \
                     that speaks only HTTP/2 (tonic's default) drops such connections — \
                     `Server::builder().accept_http1(true)` fixes it"
                )),
                What::Answered { .. } => e,
            })?;
        self.check(status, &headers, &body)
    }

    fn error(&self, what: What) -> MountError {
        MountError(Box::new(Failure {
            path: self.path.clone(),
            what,
            advice: self.advice.replace("<path>", &self.path),
        }))
    }
}

/// One HTTP/1.1 exchange on a fresh connection; the error says what failed.
async fn exchange_http1(
    addr: SocketAddr,
    req: Request<Bytes>,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/1.1 handshake failed: {e}"))?;
    let conn = tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    parts.headers.insert(
        header::HOST,
        HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?,
    );
    let sent = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await;
    let result = match sent {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            match body.collect().await {
                Ok(b) => Ok((parts.status, parts.headers, b.to_bytes())),
                Err(e) => Err(format!("the answer's body failed: {e}")),
            }
        }
        Err(e) => Err(format!("the connection failed: {e}")),
    };
    conn.abort();
    result
}

/// Our error code, if the answer looks like one of ours: JSON `{"error":"<code>"}`.
fn our_code(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    if !content_type.is_some_and(|ct| ct.starts_with("application/json")) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.get("error")?.as_str().map(str::to_owned)
}

fn quote(body: &[u8]) -> String {
    let cut = &body[..body.len().min(QUOTED_BODY)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if body.len() > QUOTED_BODY {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    }

    #[test]
    fn the_request_is_a_kinde_post_of_a_malformed_token() {
        let req = MountProbe::new("/hooks/kinde").request();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/hooks/kinde");
        assert_eq!(req.headers()["content-type"], "application/jwt");
        assert_eq!(req.headers()["webhook-id"], PROBE_WEBHOOK_ID);
        assert_eq!(
            req.headers()["content-length"],
            PROBE_BODY.len().to_string()
        );
        assert!(!req.body().contains(&b'.'), "a token with dots might parse");
    }

    #[test]
    fn only_our_malformed_token_answer_passes() {
        let p = MountProbe::new("/kinde/webhook");
        assert!(p
            .check(
                StatusCode::BAD_REQUEST,
                &json(),
                br#"{"error":"malformed_token"}"#
            )
            .is_ok());
        let charset = {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            h
        };
        assert!(p
            .check(
                StatusCode::BAD_REQUEST,
                &charset,
                br#"{"error":"malformed_token"}"#
            )
            .is_ok());
        // The same bytes as text/plain, another code, another status, extra fields: not ours.
        for (status, headers, body) in [
            (
                400,
                HeaderMap::new(),
                &br#"{"error":"malformed_token"}"#[..],
            ),
            (400, json(), br#"{"error":"bad_request"}"#),
            (422, json(), br#"{"error":"malformed_token"}"#),
            (400, json(), br#"{"error":"malformed_token","detail":1}"#),
            (200, json(), br#"{"status":"handled"}"#),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                p.check(status, &headers, body).is_err(),
                "{status} {body:?}"
            );
        }
    }

    #[test]
    fn a_foreign_answer_says_what_answered_and_how_to_fix() {
        let p = MountProbe::new("/kinde/webhook");
        let e = p
            .check(StatusCode::NOT_FOUND, &HeaderMap::new(), b"nope")
            .unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
        for part in [
            "POST /kinde/webhook",
            "404",
            "\"nope\"",
            "fallback",
            "route_service",
            "36 hours",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
        let ok = p
            .check(StatusCode::OK, &HeaderMap::new(), b"index")
            .unwrap_err();
        assert!(ok.to_string().contains("lost silently"), "{ok}");
        let long = vec![b'x'; 1000];
        let e = p
            .check(StatusCode::OK, &HeaderMap::new(), &long)
            .unwrap_err();
        assert!(e.to_string().len() < 1500, "the body is quoted, not dumped");
        assert_eq!(format!("{e:?}"), e.to_string());
    }

    #[test]
    fn advice_names_the_path() {
        let p = MountProbe::new("/in").advice("mount at `<path>`");
        let e = p.no_answer("reset");
        assert!(e.to_string().ends_with("\nmount at `/in`"), "{e}");
        assert!(e.to_string().contains("got no answer: reset"), "{e}");
        assert_eq!(e.status(), None);
    }

    #[tokio::test]
    async fn nothing_listening_is_no_answer() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = MountProbe::new("/kinde/webhook")
            .send_http1(addr)
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("cannot connect"), "{msg}");
        assert!(msg.contains("accept_http1(true)"), "{msg}");
    }
}
