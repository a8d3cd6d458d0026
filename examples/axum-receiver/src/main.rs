//! The axum receiver: `cargo run --release -p axum-receiver`.
//!
//! Env: `KINDE_DOMAIN` (required), `KINDE_JWKS_URL`, `BIND` (default `127.0.0.1:3000`),
//! `WEBHOOK_PATH` (default `/kinde/webhook`), `REDIS_URL`. Stdout carries exactly one line per
//! handler invocation, `handled <type> <event_id>`; logs go to stderr.

use receiver_app::{
    build_webhooks, config_or_exit, init_tracing, serve_axum, shutdown_signal, stdout_sink,
};

#[tokio::main]
async fn main() {
    init_tracing();
    let config = config_or_exit();
    let webhooks = match build_webhooks(&config, stdout_sink()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: BIND: cannot listen on {}: {e}", config.bind);
            std::process::exit(2);
        }
    };
    tracing::info!(addr = %config.bind, path = %config.webhook_path, issuer = %config.kinde_domain, "axum receiver listening");
    if let Err(e) = serve_axum(listener, webhooks, shutdown_signal()).await {
        eprintln!("error: server failed: {e}");
        std::process::exit(1);
    }
}
