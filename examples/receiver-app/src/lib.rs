//! What `axum-receiver` and `actix-receiver` share, so the two cannot drift: the settings, and
//! the plumbing around the app. The builder, the handlers and the mounting are in each
//! receiver's own `main.rs`.
//!
//! - [`Config::from_env`]: `KINDE_DOMAIN` (required), `KINDE_JWKS_URL`, `BIND`, `WEBHOOK_PATH`,
//!   `REDIS_URL` or `KINDE_STORE_PATH` (the idempotency store: Redis, or the durable file store;
//!   neither means in memory; both is an error), `KINDE_ORDERING`, `KINDE_PARK_AFTER`,
//!   `METRICS_BIND`, each validated with a one-line error naming the variable;
//!   [`Config::configure`] applies them to a `Webhooks::builder()`.
//! - [`stdout_sink`] and [`report`]: the one stdout line per handler call,
//!   `handled <type> <event_id>`, written and flushed before the answer is sent.
//! - [`install_metrics`], [`init_tracing`], [`shutdown_signal`], the `…_or_exit` helpers (exit
//!   status 2 and one line for a bad setting).
//! - [`serve_axum`] (feature `axum`): hyper's HTTP/1.1 server with a header read timeout
//!   ([`HEADER_READ_TIMEOUT`]) and a graceful stop, for any axum `Router`.
//! - [`build_webhooks`] / [`axum_app`]: the axum receiver's handlers and app, for the demo and
//!   the tests that run it in process.

mod config;
#[cfg(feature = "axum")]
mod http_app;

pub use config::{Config, ConfigError};
#[cfg(feature = "axum")]
pub use http_app::{axum_app, serve_axum, serve_axum_with, HEADER_READ_TIMEOUT};

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use kinde_core::event::{Event, OrganizationCreated, UserCreated, UserDeleted, UserUpdated};
use kinde_core::{Event as RawEvent, State, Webhooks};

/// Where handler invocations are reported: `(event type, event id)`.
pub type HandledSink = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The receivers' sink: exactly one line per handler invocation on stdout,
/// `handled <type> <event_id>`, flushed at once.
pub fn stdout_sink() -> HandledSink {
    Arc::new(|event_type, event_id| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "handled {event_type} {event_id}");
        let _ = out.flush();
    })
}

/// The axum receiver's [`Webhooks`] (the same builder as in its `main.rs`), reporting every
/// handler invocation to `sink`: for the demo and the tests that run the receiver in process.
pub fn build_webhooks(config: &Config, sink: HandledSink) -> Result<Webhooks, ConfigError> {
    config
        .configure(Webhooks::builder())?
        .state(sink)
        .on(async |State(sink): State<HandledSink>, e: Event<UserCreated>| report(&sink, &e.meta))
        .on(async |State(sink): State<HandledSink>, e: Event<UserUpdated>| report(&sink, &e.meta))
        .on(async |State(sink): State<HandledSink>, e: Event<UserDeleted>| report(&sink, &e.meta))
        .on(
            async |State(sink): State<HandledSink>, e: Event<OrganizationCreated>| {
                report(&sink, &e.meta)
            },
        )
        .fallback(async |State(sink): State<HandledSink>, e: RawEvent| report(&sink, &e.meta))
        .build()
        .map_err(ConfigError::Webhooks)
}

/// Reports one handler call of the event `meta` describes.
pub fn report(sink: &HandledSink, meta: &kinde_core::EventMeta) {
    sink(&meta.event_type, meta.event_id.as_str());
}

/// The value, or exits with status 2 and a one-line message (a setting that cannot work).
pub fn or_exit<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    })
}

/// Serves Prometheus metrics at `http://METRICS_BIND/metrics` when `METRICS_BIND` is set: the
/// listener is bound when this returns (so before the receiver answers `/health`). The handler
/// duration is a real histogram (buckets from 1 ms to 60 s). Call it inside the tokio runtime.
pub fn install_metrics(config: &Config) -> Result<(), ConfigError> {
    let Some(addr) = config.metrics_bind else {
        return Ok(());
    };
    const BUCKETS: &[f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                kinde_core::metrics::HANDLER_DURATION_SECONDS.to_owned(),
            ),
            BUCKETS,
        )
        .and_then(|b| b.install())
        .map_err(|e| ConfigError::Invalid {
            name: "METRICS_BIND",
            why: format!("cannot serve metrics on {addr}: {e}"),
        })
}

/// Logs to stderr (stdout carries only the `handled …` lines), cheaply: through a non-blocking
/// writer (a log line never makes a delivery wait on stderr; under a flood, lines are dropped
/// rather than deliveries slowed), with colours only when stderr is a terminal. `RUST_LOG`
/// filters; default `info`, where kinde-core writes only what an operator must act on
/// (per-delivery events are DEBUG). Keep the returned guard alive until exit: it flushes.
pub fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .try_init();
    guard
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Exits with status 2 and a one-line message naming `BIND` when its address cannot be
/// listened on.
pub fn listen_failed(addr: SocketAddr, error: &std::io::Error) -> ! {
    eprintln!("error: BIND: cannot listen on {addr}: {error}");
    std::process::exit(2);
}
