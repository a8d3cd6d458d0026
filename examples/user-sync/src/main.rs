//! Keep a copy of your Kinde users in your own database: `user.created` and `user.updated`
//! upsert a row, `user.deleted` deletes it. axum, SQLite through sqlx, and kinde-tower's
//! endpoint.
//!
//! ```sh
//! cargo run -p user-sync     # a local issuer in process; listens on 127.0.0.1:3000
//! kinde-webhooks send user.created --to http://127.0.0.1:3000/kinde/webhook --keys ./user-sync-keys
//! curl http://127.0.0.1:3000/users/kp_0a1b2c3d
//! ```
//!
//! Env: `KINDE_DOMAIN` (your tenant, e.g. `acme.kinde.com`; unset: a local issuer in process,
//! loopback only), `DATABASE_URL` (default `sqlite://user-sync.db`), `BIND` (default
//! `127.0.0.1:3000`), `DEV_KEYS_DIR` (default `user-sync-keys`: where the local issuer writes
//! its key).
//!
//! Kinde does not guarantee the order of deliveries: a failed delivery is retried for about
//! 36 hours while later events go through. The SQL in [`db`] is guarded by each event's signed
//! timestamp, so a late retry never overwrites newer data, and a delete leaves a tombstone that
//! an older `user.created`/`user.updated` cannot bring back. A handler that fails (the database
//! is down) answers 500, and Kinde retries it. Handled events are remembered in memory (the
//! default store): after a restart a redelivered event runs again, and the guarded SQL makes
//! that harmless.
//!
//! Copying it into your app: keep `main.rs` and `db.rs`, drop `local_issuer.rs` and the
//! `local-issuer` feature (it brings kinde-core's test kit), and set `KINDE_DOMAIN`.

mod config;
mod db;
#[cfg(feature = "local-issuer")]
mod local_issuer;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{extract::Path, routing::get, Router};
use kinde_core::event::{Event, UserCreated, UserDeleted, UserUpdated};
use kinde_core::{BuildError, EntityOrdering, EventMeta, State, Webhooks};
use kinde_tower::WebhookEndpoint;
use sqlx::SqlitePool;

use crate::config::{Config, Issuer};

/// Where Kinde POSTs (the URL you register in Kinde ends with it).
const WEBHOOK_PATH: &str = "/kinde/webhook";

/// The receiver: verifies each delivery against `issuer`'s keys, skips the ones already
/// handled, answers a late event of a user `superseded` without running anything (Kinde does
/// not deliver in order; a delete leaves a tombstone), and runs the handler of its type with
/// the pool. The SQL keeps its own guard on the signed timestamp too: the in-memory store
/// forgets on restart, the database does not.
fn webhooks(issuer: &str, db: SqlitePool) -> Result<Webhooks, BuildError> {
    Webhooks::builder()
        .issuer(issuer)
        .ordering(EntityOrdering::latest_wins())
        .state(db)
        .on(user_created)
        .on(user_updated)
        .on(user_deleted)
        .build()
}

/// The app: the webhook endpoint, and a route reading the copy.
fn app(webhooks: Webhooks, db: SqlitePool) -> Router {
    Router::new()
        .route_service(WEBHOOK_PATH, WebhookEndpoint::new(webhooks))
        .route("/users/{id}", get(show_user))
        .with_state(db)
}

/// An `Err` answers 500: the claim is released and Kinde's retry runs the handler again.
async fn user_created(
    State(db): State<SqlitePool>,
    e: Event<UserCreated>,
) -> Result<(), sqlx::Error> {
    let applied = db::upsert_user(&db, &e.data.user, db::kinde_ts(&e.meta)).await?;
    log(&e.meta, &e.data.user.id, applied);
    Ok(())
}

async fn user_updated(
    State(db): State<SqlitePool>,
    e: Event<UserUpdated>,
) -> Result<(), sqlx::Error> {
    let applied = db::upsert_user(&db, &e.data.user, db::kinde_ts(&e.meta)).await?;
    log(&e.meta, &e.data.user.id, applied);
    Ok(())
}

async fn user_deleted(
    State(db): State<SqlitePool>,
    e: Event<UserDeleted>,
) -> Result<(), sqlx::Error> {
    let applied = db::delete_user(&db, &e.data.user.id, db::kinde_ts(&e.meta)).await?;
    log(&e.meta, &e.data.user.id, applied);
    Ok(())
}

/// One line per event (the delivery's span adds its event id and type).
fn log(meta: &EventMeta, user: &str, applied: bool) {
    if applied {
        tracing::info!(user, "{} applied", meta.event_type);
    } else {
        tracing::info!(
            user,
            "{} is older than the row: nothing changed",
            meta.event_type
        );
    }
}

/// `GET /users/{id}`: the user as JSON, or 404 (never seen, or deleted).
async fn show_user(
    axum::extract::State(db): axum::extract::State<SqlitePool>,
    Path(id): Path<String>,
) -> Response {
    match db::user(&db, &id).await {
        Ok(Some(u)) if !u.deleted => {
            let body = serde_json::json!({
                "id": u.id, "email": u.email, "first_name": u.first_name, "last_name": u.last_name,
                "username": u.username, "phone": u.phone, "is_suspended": u.is_suspended,
                "is_password_reset_requested": u.is_password_reset_requested, "kinde_ts": u.kinde_ts,
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read user {id}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// What stopped the app: the exit status (2: bad configuration) and why.
struct Failure(u8, String);

async fn run() -> Result<(), Failure> {
    let config = Config::from_env().map_err(|e| Failure(2, e))?;
    let shutdown =
        shutdown_signal().map_err(|e| Failure(1, format!("cannot watch signals: {e}")))?;
    let issuer = Issuer::from_config(&config)
        .await
        .map_err(|e| Failure(1, e))?;
    let db = db::connect(&config.database_url)
        .await
        .map_err(|e| Failure(1, format!("{}: {e}", config.database_url)))?;
    let webhooks = webhooks(issuer.url(), db.clone()).map_err(|e| Failure(2, e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| Failure(1, format!("cannot listen on {}: {e}", config.bind)))?;

    println!(
        "user-sync: webhooks at http://{}{WEBHOOK_PATH}, users at http://{}/users/ID, database {}",
        config.bind, config.bind, config.database_url
    );
    #[cfg(feature = "local-issuer")]
    if let Issuer::Local(local) = &issuer {
        println!(
            "local issuer {} (its key: {}); try:\n  kinde-webhooks send user.created --to http://{}{WEBHOOK_PATH} --keys {}",
            local.url,
            local.key_file.display(),
            config.bind,
            config.dev_keys_dir.display(),
        );
    }
    axum::serve(listener, app(webhooks, db))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Failure(1, format!("server failed: {e}")))
}

/// Resolves on Ctrl-C (SIGINT), or SIGTERM on unix. The handlers are installed now, so a
/// signal that comes before the server runs stops it too.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
