//! The `users` table, and the two statements that keep it in step with Kinde.
//!
//! Kinde does not deliver events in order: it retries a failed delivery for about 36 hours, on
//! its own schedule, while later events go through. So every row remembers the signed
//! `timestamp` of the last event applied to it (`kinde_ts`, unix microseconds), and each write
//! is guarded **in SQL** by it: an event older than what the row holds changes nothing. A
//! delete keeps the row as a tombstone (`deleted = 1`, the personal data cleared, the delete's
//! timestamp kept), so a late `user.created` or `user.updated` cannot bring the user back.
//!
//! Guarded writes are also idempotent: a second run of the same event (a retry after a lost
//! answer, a restart that forgot the delivery) changes nothing.

use std::str::FromStr as _;

use kinde_core::event::User;
use kinde_core::EventMeta;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row as _, SqlitePool};

/// Kinde's payloads omit fields (only the id is guaranteed), so every other column is NULL when
/// the event did not carry it. Read the users with `WHERE deleted = 0`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id                          TEXT    NOT NULL PRIMARY KEY,  -- Kinde's user id (kp_...)
    email                       TEXT    NULL,
    first_name                  TEXT    NULL,
    last_name                   TEXT    NULL,
    username                    TEXT    NULL,
    phone                       TEXT    NULL,
    is_suspended                INTEGER NULL,                  -- 0 / 1; NULL: not sent
    is_password_reset_requested INTEGER NULL,                  -- 0 / 1; NULL: not sent
    deleted                     INTEGER NOT NULL DEFAULT 0,    -- 1: a tombstone
    kinde_ts                    INTEGER NOT NULL               -- the last applied event's signed timestamp (unix us)
) STRICT";

/// A `user.created` or `user.updated` is a snapshot of the user: the newest one wins whole.
/// The `WHERE` leaves a row holding a newer event (or a newer delete) untouched.
const UPSERT: &str = "
INSERT INTO users (id, email, first_name, last_name, username, phone,
                   is_suspended, is_password_reset_requested, deleted, kinde_ts)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)
ON CONFLICT (id) DO UPDATE SET
    email = excluded.email,
    first_name = excluded.first_name,
    last_name = excluded.last_name,
    username = excluded.username,
    phone = excluded.phone,
    is_suspended = excluded.is_suspended,
    is_password_reset_requested = excluded.is_password_reset_requested,
    deleted = 0,
    kinde_ts = excluded.kinde_ts
WHERE excluded.kinde_ts > users.kinde_ts";

/// A `user.deleted` clears the row and keeps it as a tombstone, with the delete's timestamp. A
/// delete of a user never seen (its `user.created` is still being retried) leaves a tombstone
/// too, so that `user.created` changes nothing when it comes.
const DELETE: &str = "
INSERT INTO users (id, deleted, kinde_ts) VALUES (?1, 1, ?2)
ON CONFLICT (id) DO UPDATE SET
    email = NULL, first_name = NULL, last_name = NULL, username = NULL, phone = NULL,
    is_suspended = NULL, is_password_reset_requested = NULL,
    deleted = 1,
    kinde_ts = excluded.kinde_ts
WHERE excluded.kinde_ts > users.kinde_ts";

const SELECT: &str = "
SELECT id, email, first_name, last_name, username, phone,
       is_suspended, is_password_reset_requested, deleted, kinde_ts
FROM users WHERE id = ?1";

/// Opens (creating it if needed) the database at `url` (`sqlite://users.db`, `sqlite::memory:`)
/// and creates the table.
pub async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
    Ok(pool)
}

/// The event's signed `timestamp` in unix microseconds (Kinde's precision). It always fits:
/// an `OffsetDateTime` spans ±9999 years, about 3·10¹⁷ µs.
pub fn kinde_ts(meta: &EventMeta) -> i64 {
    (meta.timestamp.unix_timestamp_nanos() / 1_000) as i64
}

/// Applies a `user.created` / `user.updated` snapshot taken at `kinde_ts`. `false`: the row
/// holds a newer event (or the user's delete), and nothing changed.
pub async fn upsert_user(db: &SqlitePool, user: &User, kinde_ts: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(UPSERT)
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.first_name)
        .bind(&user.last_name)
        .bind(&user.username)
        .bind(&user.phone)
        .bind(user.is_suspended)
        .bind(user.is_password_reset_requested)
        .bind(kinde_ts)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Applies a `user.deleted` taken at `kinde_ts`. `false`: the row holds a newer event, and
/// nothing changed.
pub async fn delete_user(db: &SqlitePool, id: &str, kinde_ts: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(DELETE)
        .bind(id)
        .bind(kinde_ts)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    pub is_suspended: Option<bool>,
    pub is_password_reset_requested: Option<bool>,
    /// A tombstone: the user was deleted in Kinde.
    pub deleted: bool,
    /// The signed timestamp (unix µs) of the last event applied.
    pub kinde_ts: i64,
}

/// The row of user `id`, tombstones included.
pub async fn user(db: &SqlitePool, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query(SELECT)
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(|row| user_row(&row))
        .transpose()
}

fn user_row(row: &SqliteRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        username: row.try_get("username")?,
        phone: row.try_get("phone")?,
        is_suspended: row.try_get("is_suspended")?,
        is_password_reset_requested: row.try_get("is_password_reset_requested")?,
        deleted: row.try_get("deleted")?,
        kinde_ts: row.try_get("kinde_ts")?,
    })
}
