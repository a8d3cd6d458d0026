//! The axum app: `GET /health` and the Kinde webhook layer.

use std::future::Future;

use axum::routing::get;
use axum::Router;
use kinde_core::Webhooks;
use kinde_tower::KindeWebhookLayer;
use tokio::net::TcpListener;

/// The receiver's axum app: an ordinary `GET /health` route answering `ok`, with the webhook
/// layer in front.
pub fn axum_app(webhooks: Webhooks) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .layer(KindeWebhookLayer::new(webhooks))
}

/// Serves the app on `listener` until `shutdown` resolves. The JWKS is warmed in the
/// background; start-up never waits for the issuer.
pub async fn serve_axum(
    listener: TcpListener,
    webhooks: Webhooks,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    webhooks.warm_up();
    axum::serve(listener, axum_app(webhooks))
        .with_graceful_shutdown(shutdown)
        .await
}
