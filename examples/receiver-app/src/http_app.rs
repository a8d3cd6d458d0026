//! The axum app: `GET /health` and the Kinde webhook endpoint.

use std::future::Future;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kinde_core::Webhooks;
use kinde_tower::WebhookEndpoint;
use tokio::net::TcpListener;

/// The axum receiver's app (as in its `main.rs`): an ordinary `GET /health` route answering
/// `ok`, and the webhook endpoint mounted with `route_service` at [`Webhooks::path`]
/// (`WEBHOOK_PATH`, which [`crate::Config`] keeps to plain path characters), exactly: no path
/// normalization in front of it.
pub fn axum_app(webhooks: Webhooks) -> Router {
    let path = webhooks.path().to_owned();
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route_service(&path, WebhookEndpoint::new(webhooks))
}

/// How long a client may take to send a request head, from the moment the server waits for it
/// (a new connection, or the next request on a keep-alive connection): past it, the connection
/// is closed. The body has its own deadline, [`Webhooks`]' `body_timeout` (10 s by default).
/// The actix receiver sets the same value (`client_request_timeout`).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the connections in
/// flight to finish (each is told to close after its current request).
///
/// Served with hyper's HTTP/1.1 server and a timer, not `axum::serve` (which sets no header
/// read timeout, so a client trickling a request head held its connection forever): a head
/// must arrive within [`HEADER_READ_TIMEOUT`].
pub async fn serve_axum(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_axum_with(listener, app, shutdown, HEADER_READ_TIMEOUT).await
}

/// [`serve_axum`] with another header read timeout (tests shorten it).
pub async fn serve_axum_with(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A connection's end (the client went away, a timeout, a parse error) concerns
            // that connection only.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An accept that failed: a connection that went away before it was accepted is skipped; any
/// other error (out of file descriptors, say) is logged and retried after a pause, as
/// `axum::serve` does, rather than spinning or stopping the server.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
