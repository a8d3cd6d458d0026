//! The axum receiver: `cargo run --release -p axum-receiver`.
//!
//! Env: `KINDE_DOMAIN` (required), `KINDE_JWKS_URL`, `BIND` (default `127.0.0.1:3000`),
//! `WEBHOOK_PATH` (default `/kinde/webhook`), the idempotency store — `REDIS_URL` (shared by
//! several receivers) or `KINDE_STORE_PATH` (a file that survives restarts, one receiver per
//! file; both set is an error), in memory when neither is set — `KINDE_ORDERING` (`1`: the
//! latest event per entity wins), `KINDE_PARK_AFTER` (park a poison event after N failures) and
//! `METRICS_BIND` (Prometheus at `/metrics`). A bad setting exits 2 with one line naming it.
//! Stdout carries exactly one line per handler call, `handled <type> <event_id>`; logs go to
//! stderr. It starts while the issuer is unreachable (deliveries get 503 until the keys can be
//! fetched) and stops gracefully on SIGINT or SIGTERM. See `examples/README.md`.

use axum::routing::get;
use axum::Router;
use kinde_core::event::{Event, OrganizationCreated, UserCreated, UserDeleted, UserUpdated};
use kinde_core::{Event as AnyEvent, State, Webhooks};
use kinde_tower::WebhookEndpoint;
use receiver_app::{
    init_tracing, install_metrics, listen_failed, or_exit, report, serve_axum, shutdown_signal,
    stdout_sink, Config, ConfigError, HandledSink,
};

type Out = State<HandledSink>;

#[tokio::main]
async fn main() {
    let _logs = init_tracing();
    let config = or_exit(Config::from_env());
    // Bound before anything answers (so before `/health` says 200).
    or_exit(install_metrics(&config));

    // The receiver: the settings above, one typed handler per type this receiver cares about,
    // and a fallback for every other type; each prints its `handled` line.
    let webhooks = or_exit(config.configure(Webhooks::builder()))
        .state(stdout_sink())
        .on(async |State(out): Out, e: Event<UserCreated>| report(&out, &e.meta))
        .on(async |State(out): Out, e: Event<UserUpdated>| report(&out, &e.meta))
        .on(async |State(out): Out, e: Event<UserDeleted>| report(&out, &e.meta))
        .on(async |State(out): Out, e: Event<OrganizationCreated>| report(&out, &e.meta))
        .fallback(async |State(out): Out, e: AnyEvent| report(&out, &e.meta))
        .build();
    let webhooks = or_exit(webhooks.map_err(ConfigError::Webhooks));
    webhooks.warm_up(); // start-up never waits for the issuer

    // The app: its own routes, and the webhook endpoint where the router puts it.
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route_service(&config.webhook_path, WebhookEndpoint::new(webhooks));

    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .unwrap_or_else(|e| listen_failed(config.bind, &e));
    tracing::info!(addr = %config.bind, path = %config.webhook_path, issuer = %config.kinde_domain, "axum receiver listening");
    // hyper's HTTP/1.1 server with a header read timeout (not `axum::serve`, which has none).
    if let Err(e) = serve_axum(listener, app, shutdown_signal()).await {
        eprintln!("error: server failed: {e}");
        std::process::exit(1);
    }
}
