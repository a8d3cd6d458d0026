//! The mount proof for tower apps (feature `testing`): is the webhook really answered at the
//! path Kinde will POST to, through the whole app as it is assembled?
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use axum::{routing::get, Router};
//! use kinde_core::Webhooks;
//! use kinde_tower::{testing::assert_mounted, WebhookEndpoint};
//!
//! let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .route_service("/kinde/webhook", WebhookEndpoint::new(webhooks))
//!     .fallback(|| async { "not found" });
//! assert_mounted(app, "/kinde/webhook").await; // panics, saying what answered instead
//! # }
//! ```
//!
//! The probe is a POST of a malformed token (see [`kinde_core::testing::MountProbe`]): it is
//! refused before any key, store or handler is involved, so it is safe with the app's real
//! receiver. It goes through the app in process, with no socket. What only a real server
//! shows (tonic without `accept_http1(true)`) needs
//! [`MountProbe::send_http1`](kinde_core::testing::MountProbe::send_http1) against the running
//! server.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Full};
use kinde_core::testing::{MountError, MountProbe};
use tower_service::Service;

/// The most of an answer's body the proof reads (enough for any answer of ours).
const READ_AT_MOST: usize = 64 * 1024;

const TOWER_ADVICE: &str = "How to fix (axum): mount the endpoint where the router decides the \
    path: `.route_service(\"<path>\", WebhookEndpoint::new(webhooks))` — anywhere in the router, \
    inside `nest` (with the path relative to the nest), `merge`, beside a `fallback`, with state. \
    With `WebhookLayer`: make it the last `.layer(..)` of the outermost router (after \
    `.fallback`, `.nest`, `.merge`), never `route_layer`, never on a nested or merged router. \
    tonic: `Server::builder().accept_http1(true).layer(WebhookLayer::new(webhooks))` (Kinde \
    POSTs over HTTP/1.1).";

/// The request body of the probe: the malformed token, in one frame.
#[derive(Debug)]
pub struct ProbeBody(Full<Bytes>);

impl Body for ProbeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Sends the mount probe to `path` through `app` (the whole app, as served: an axum
/// `Router`, a tonic `Routes` with the layer around it, any tower service taking
/// `Request<`[`ProbeBody`]`>`) and panics, saying what answered instead and how to fix the
/// mounting, unless kinde-webhooks answered.
pub async fn assert_mounted<S, B>(app: S, path: &str)
where
    S: Service<Request<ProbeBody>, Response = Response<B>>,
    S::Error: fmt::Display,
    B: Body,
    B::Error: fmt::Display,
{
    if let Err(e) = check_mounted(app, path).await {
        panic!("{e}");
    }
}

/// [`assert_mounted`], returning the failure instead of panicking.
pub async fn check_mounted<S, B>(mut app: S, path: &str) -> Result<(), MountError>
where
    S: Service<Request<ProbeBody>, Response = Response<B>>,
    S::Error: fmt::Display,
    B: Body,
    B::Error: fmt::Display,
{
    let probe = MountProbe::new(path).advice(TOWER_ADVICE);
    let req = probe.request().map(|b| ProbeBody(Full::new(b)));
    let resp = probe
        .within(async {
            std::future::poll_fn(|cx| app.poll_ready(cx)).await?;
            app.call(req).await
        })
        .await?;
    let (parts, body) = resp.into_parts();
    let body = probe.within(read_at_most(body, READ_AT_MOST)).await?;
    probe.check(parts.status, &parts.headers, &body)
}

/// The body's first `limit` bytes (or all of it, if shorter).
async fn read_at_most<B: Body>(body: B, limit: usize) -> Result<Bytes, B::Error> {
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while buf.len() < limit {
        match body.frame().await {
            None => break,
            Some(frame) => {
                if let Ok(mut data) = frame?.into_data() {
                    use bytes::Buf as _;
                    while data.has_remaining() && buf.len() < limit {
                        let chunk = data.chunk();
                        let take = chunk.len().min(limit - buf.len());
                        buf.extend_from_slice(&chunk[..take]);
                        data.advance(take);
                    }
                }
            }
        }
    }
    Ok(buf.freeze())
}
