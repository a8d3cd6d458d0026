//! The actix receiver: `cargo run --release -p actix-receiver`.
//!
//! The same contract as the axum receiver. Env: `KINDE_DOMAIN` (required), `KINDE_JWKS_URL`,
//! `BIND` (default `127.0.0.1:3000`), `WEBHOOK_PATH` (default `/kinde/webhook`), and the
//! idempotency store: `REDIS_URL` (shared by several receivers) or `KINDE_STORE_PATH` (a file
//! that survives restarts, one receiver per file; both set is an error), in memory when neither
//! is set. Stdout carries exactly one line per handler invocation, `handled <type> <event_id>`; logs go
//! to stderr. `GET /health` answers `ok`. It starts while the issuer is unreachable (deliveries
//! get 503 until the keys can be fetched) and stops gracefully on SIGINT or SIGTERM.
//!
//! The receiver is built once, before the server, and cloned into every worker's app: all
//! workers share one idempotency store, one key cache and one bound on deliveries in flight.
//! The webhook is an endpoint the app's router mounts at `WEBHOOK_PATH`, exactly: no path
//! normalization in front of it (a path actix-web would read as a pattern, with `{`, `}` or a
//! trailing `*`, is intercepted by the middleware instead, literally). A request head must arrive within 10 s
//! (`client_request_timeout`), a body within the receiver's body deadline (10 s).

use std::time::Duration;

use actix_web::middleware::Condition;
use actix_web::{web, App, HttpServer};
use kinde_actix::{WebhookEndpoint, WebhookMiddleware};
use receiver_app::{
    config_or_exit, init_tracing, listen_failed, shutdown_signal, webhooks_or_exit, Config,
};

/// How long a client may take to send a request head: the axum receiver's
/// `receiver_app::HEADER_READ_TIMEOUT`, too.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let _logs = init_tracing();
    let config = config_or_exit();
    let webhooks = webhooks_or_exit(&config);
    let served = actix_web::rt::System::new().block_on(async move {
        // Start-up never waits for the issuer.
        webhooks.warm_up();
        let path = config.webhook_path.clone();
        // actix-web reads `{..}` in a resource path as a capture and a trailing `*` as a tail,
        // with no way to escape them: such a `WEBHOOK_PATH` is intercepted by the middleware
        // instead, which compares the path literally (same answers, same exact-path rule).
        let literal = is_pattern(&path);
        let server = HttpServer::new(move || {
            let endpoint = WebhookEndpoint::new(webhooks.clone());
            let path = path.clone();
            App::new()
                .wrap(Condition::new(
                    literal,
                    WebhookMiddleware::new(webhooks.clone()),
                ))
                .route("/health", web::get().to(|| async { "ok" }))
                .configure(move |cfg| {
                    if !literal {
                        cfg.service(web::resource(path.as_str()).to(endpoint));
                    }
                })
        })
        // A request head must arrive within this (actix-web answers 408 and closes past it);
        // the body has its own deadline, the receiver's `body_timeout`.
        .client_request_timeout(HEADER_READ_TIMEOUT)
        // No linger after an answer that leaves the upload unread (408, 413, 503): by default
        // actix-web keeps such a connection 1 s more, reading and discarding up to 128 KiB at a
        // time, which a flood of refused uploads turns into tens of MiB. The connection is
        // closed at once instead (a client still sending may see a reset; Kinde retries).
        .client_disconnect_timeout(Duration::ZERO)
        // Replaces actix's own signal handling (forced stop on SIGINT) with a graceful stop on
        // both SIGINT and SIGTERM.
        .shutdown_signal(shutdown_signal());
        let server = server
            .bind(config.bind)
            .unwrap_or_else(|e| listen_failed(config.bind, &e));
        log_listening(&config);
        server.run().await
    });
    if let Err(e) = served {
        eprintln!("error: server failed: {e}");
        std::process::exit(1);
    }
}

/// Whether actix-web's router would read `path` as a pattern rather than a literal path.
fn is_pattern(path: &str) -> bool {
    path.contains(['{', '}']) || path.ends_with('*')
}

fn log_listening(config: &Config) {
    tracing::info!(
        addr = %config.bind,
        path = %config.webhook_path,
        issuer = %config.kinde_domain,
        "actix receiver listening"
    );
}
