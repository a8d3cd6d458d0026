//! The axum app: `GET /health` and the Kinde webhook endpoint.

use std::future::Future;

use axum::routing::get;
use axum::Router;
use kinde_core::Webhooks;
use kinde_tower::WebhookEndpoint;
use tokio::net::TcpListener;

/// The receiver's axum app: an ordinary `GET /health` route answering `ok`, and the webhook
/// endpoint mounted with `route_service` at [`Webhooks::path`] (`WEBHOOK_PATH`), exactly: no
/// path normalization in front of it.
pub fn axum_app(webhooks: Webhooks) -> Router {
    let path = literal_route(webhooks.path());
    Router::new()
        // `WEBHOOK_PATH` is a literal path, never a route pattern: a segment starting with
        // `:` or `*` is a plain segment, and braces are escaped below.
        .without_v07_checks()
        .route("/health", get(|| async { "ok" }))
        .route_service(&path, WebhookEndpoint::new(webhooks))
}

/// `path` as an axum route matching exactly that path: `{` and `}` escaped (`{{`, `}}`), so no
/// part of it becomes a capture.
fn literal_route(path: &str) -> String {
    path.replace('{', "{{").replace('}', "}}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_a_literal_route() {
        assert_eq!(literal_route("/kinde/webhook"), "/kinde/webhook");
        assert_eq!(literal_route("/hooks/{id}"), "/hooks/{{id}}");
        // Builds without panicking for paths axum 0.7 would have read as captures.
        for path in ["/hooks/:id", "/hooks/*rest", "/hooks/{id}"] {
            let webhooks = Webhooks::builder()
                .issuer("acme.kinde.com")
                .path(path)
                .build()
                .unwrap();
            let _ = axum_app(webhooks);
        }
    }
}
