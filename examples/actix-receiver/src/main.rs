//! The actix receiver: `cargo run --release -p actix-receiver`.
//!
//! The same contract as the axum receiver (`examples/README.md`). Env: `KINDE_DOMAIN`
//! (required), `KINDE_JWKS_URL`, `BIND` (default `127.0.0.1:3000`), `WEBHOOK_PATH` (default
//! `/kinde/webhook`), the idempotency store — `REDIS_URL` (shared by several receivers) or
//! `KINDE_STORE_PATH` (a file that survives restarts, one receiver per file; both set is an
//! error), in memory when neither is set — `KINDE_ORDERING`, `KINDE_PARK_AFTER` and
//! `METRICS_BIND`. A bad setting exits 2 with one line naming it. Stdout carries exactly one line
//! per handler call, `handled <type> <event_id>`; logs go to stderr. `GET /health` answers `ok`.
//! It starts while the issuer is unreachable (deliveries get 503 until the keys can be fetched)
//! and stops gracefully on SIGINT or SIGTERM.
//!
//! The webhook is an endpoint the app's router mounts at `WEBHOOK_PATH`, exactly: no path
//! normalization in front of it. A request head must arrive within 10 s
//! (`client_request_timeout`), a body within the receiver's body deadline (10 s).

use std::time::Duration;

use actix_web::{web, App, HttpServer};
use kinde_actix::WebhookEndpoint;
use kinde_core::event::{Event, OrganizationCreated, UserCreated, UserDeleted, UserUpdated};
use kinde_core::{Event as AnyEvent, State, Webhooks};
use receiver_app::{
    init_tracing, install_metrics, listen_failed, or_exit, report, shutdown_signal, stdout_sink,
    Config, ConfigError, HandledSink,
};

/// How long a client may take to send a request head: the axum receiver's
/// `receiver_app::HEADER_READ_TIMEOUT`, too.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

type Out = State<HandledSink>;

fn main() {
    let _logs = init_tracing();
    let config = or_exit(Config::from_env());

    // The receiver, built once before the server: every worker gets a clone, so all share one
    // idempotency store and one key cache. The settings above, one typed handler per type this
    // receiver cares about, and a fallback for every other type; each prints its `handled` line.
    let webhooks = or_exit(config.configure(Webhooks::builder()))
        .state(stdout_sink())
        .on(async |State(out): Out, e: Event<UserCreated>| report(&out, &e.meta))
        .on(async |State(out): Out, e: Event<UserUpdated>| report(&out, &e.meta))
        .on(async |State(out): Out, e: Event<UserDeleted>| report(&out, &e.meta))
        .on(async |State(out): Out, e: Event<OrganizationCreated>| report(&out, &e.meta))
        .fallback(async |State(out): Out, e: AnyEvent| report(&out, &e.meta))
        .build();
    let webhooks = or_exit(webhooks.map_err(ConfigError::Webhooks));

    let served = actix_web::rt::System::new().block_on(async move {
        // Bound before anything answers (so before `/health` says 200).
        or_exit(install_metrics(&config));
        webhooks.warm_up(); // start-up never waits for the issuer
        let path = config.webhook_path.clone();
        let server = HttpServer::new(move || {
            // The app: its own routes, and the webhook endpoint as a resource of its router.
            App::new()
                .route("/health", web::get().to(|| async { "ok" }))
                .service(web::resource(path.as_str()).to(WebhookEndpoint::new(webhooks.clone())))
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

fn log_listening(config: &Config) {
    tracing::info!(
        addr = %config.bind,
        path = %config.webhook_path,
        issuer = %config.kinde_domain,
        "actix receiver listening"
    );
}
