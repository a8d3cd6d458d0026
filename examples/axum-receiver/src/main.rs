//! The axum receiver: `cargo run --release -p axum-receiver`.
//!
//! Env: `KINDE_DOMAIN` (required), `KINDE_JWKS_URL`, `BIND` (default `127.0.0.1:3000`),
//! `WEBHOOK_PATH` (default `/kinde/webhook`), and the idempotency store: `REDIS_URL` (shared by
//! several receivers) or `KINDE_STORE_PATH` (a file that survives restarts, one receiver per
//! file; both set is an error), in memory when neither is set. Stdout carries exactly one line per
//! handler invocation, `handled <type> <event_id>`; logs go to stderr. It starts while the issuer
//! is unreachable (deliveries get 503 until the keys can be fetched) and stops gracefully on
//! SIGINT or SIGTERM.

use receiver_app::{
    config_or_exit, init_tracing, listen_failed, serve_axum, shutdown_signal, webhooks_or_exit,
};

#[tokio::main]
async fn main() {
    let _logs = init_tracing();
    let config = config_or_exit();
    let webhooks = webhooks_or_exit(&config);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .unwrap_or_else(|e| listen_failed(config.bind, &e));
    tracing::info!(addr = %config.bind, path = %config.webhook_path, issuer = %config.kinde_domain, "axum receiver listening");
    if let Err(e) = serve_axum(listener, webhooks, shutdown_signal()).await {
        eprintln!("error: server failed: {e}");
        std::process::exit(1);
    }
}
