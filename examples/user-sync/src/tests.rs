//! The example as Kinde meets it: the app served on 127.0.0.1, a local issuer's JWKS on
//! another port, signed deliveries over HTTP, and a real SQLite file.

use std::time::Duration;

use kinde_core::event::{User, UserCreated, UserDeleted, UserRef, UserUpdated};
use kinde_core::testing::time::OffsetDateTime;
use kinde_core::testing::{TestEvent, TestIssuer};
use sqlx::SqlitePool;

use crate::db::{self, UserRow};

/// A bound on every request, never reached when things work (a busy CI machine included).
const REQUEST_BOUND: Duration = Duration::from_secs(60);

/// The app on a loopback port, its database and the issuer it trusts. Stops the server when
/// dropped.
struct Running {
    issuer: TestIssuer,
    jwks_url: String,
    base: String,
    db: SqlitePool,
    client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Running {
    async fn start() -> Self {
        let issuer = TestIssuer::new();
        let jwks = issuer.serve().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        let db = db::connect(&url).await.expect("open the database");
        // Test instrumentation, in SQLite itself: every write to `users` is recorded.
        for sql in [
            "CREATE TABLE writes (id TEXT NOT NULL)",
            "CREATE TRIGGER count_inserts AFTER INSERT ON users BEGIN INSERT INTO writes VALUES (NEW.id); END",
            "CREATE TRIGGER count_updates AFTER UPDATE ON users BEGIN INSERT INTO writes VALUES (NEW.id); END",
        ] {
            sqlx::query(sql).execute(&db).await.expect("instrument");
        }
        let (base, server) = serve(&jwks.url(), &db).await;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_BOUND)
            .build()
            .expect("client");
        Self {
            issuer,
            jwks_url: jwks.url(),
            base,
            db,
            client,
            server,
            _dir: dir,
        }
    }

    /// Stops the app and starts it again on the same database: a new receiver whose in-memory
    /// store remembers no delivery.
    async fn restart(&mut self) {
        self.server.abort();
        (self.base, self.server) = serve(&self.jwks_url, &self.db).await;
    }

    /// POSTs `token` as Kinde does: the status and the body.
    async fn deliver(&self, token: &str) -> (u16, String) {
        let resp = self
            .client
            .post(format!("{}{}", self.base, crate::WEBHOOK_PATH))
            .header("content-type", "application/jwt")
            .body(token.to_owned())
            .send()
            .await
            .expect("the app answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("a body"))
    }

    async fn row(&self, id: &str) -> Option<UserRow> {
        db::user(&self.db, id).await.expect("read the row")
    }

    /// Writes to `users` so far (inserts and updates, any user).
    async fn writes(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM writes")
            .fetch_one(&self.db)
            .await
            .expect("count writes")
    }

    async fn get_user(&self, id: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}/users/{id}", self.base))
            .send()
            .await
            .expect("the app answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("a body"))
    }
}

/// The app, trusting the issuer at `jwks_url`, on a free loopback port: its URL and its task.
async fn serve(jwks_url: &str, db: &SqlitePool) -> (String, tokio::task::JoinHandle<()>) {
    let webhooks = crate::webhooks(jwks_url, db.clone()).expect("valid configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    let app = crate::app(webhooks, db.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (base, server)
}

const HANDLED: (u16, &str) = (200, r#"{"status":"handled"}"#);
const SUPERSEDED: (u16, &str) = (200, r#"{"status":"superseded"}"#);
const IN_PROGRESS: (u16, &str) = (409, r#"{"error":"in_progress"}"#);

fn answer(got: &(u16, String)) -> (u16, &str) {
    (got.0, got.1.as_str())
}

/// `minutes` ago (inside the replay window).
fn ago(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - kinde_core::testing::time::Duration::minutes(minutes)
}

fn user(id: &str, email: &str) -> User {
    let mut user = User::new(id);
    user.email = Some(email.to_owned());
    user.first_name = Some("Ada".to_owned());
    user.is_suspended = Some(false);
    user
}

fn created(user: User, at: OffsetDateTime) -> TestEvent {
    TestEvent::typed(&UserCreated::new(user)).timestamp(at)
}

fn updated(user: User, at: OffsetDateTime) -> TestEvent {
    TestEvent::typed(&UserUpdated::new(user)).timestamp(at)
}

fn deleted(id: &str, at: OffsetDateTime) -> TestEvent {
    TestEvent::typed(&UserDeleted::new(UserRef::new(id))).timestamp(at)
}

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_twice_is_handled_then_a_duplicate_and_writes_once() {
    let app = Running::start().await;
    let at = ago(10);
    let token = app
        .issuer
        .sign(&created(user("kp_1", "ada@example.com"), at).into_claims());

    assert_eq!(answer(&app.deliver(&token).await), HANDLED);
    assert_eq!(
        answer(&app.deliver(&token).await),
        (200, r#"{"status":"duplicate"}"#)
    );

    assert_eq!(app.writes().await, 1);
    let row = app.row("kp_1").await.expect("the user's row");
    assert_eq!(row.email.as_deref(), Some("ada@example.com"));
    assert_eq!(row.first_name.as_deref(), Some("Ada"));
    assert_eq!(row.is_suspended, Some(false));
    assert_eq!(row.last_name, None, "not sent: NULL, not an invented value");
    assert_eq!(row.kinde_ts, micros(at));
    assert!(!row.deleted);
    let (status, body) = app.get_user("kp_1").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["email"], "ada@example.com");
    assert_eq!(json["last_name"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_after_a_restart_runs_again_and_writes_nothing() {
    let mut app = Running::start().await;
    let token = app
        .issuer
        .sign(&updated(user("kp_1", "ada@example.com"), ago(10)).into_claims());
    assert_eq!(answer(&app.deliver(&token).await), HANDLED);

    // The in-memory store forgot the delivery; the timestamp guard in SQL did not.
    app.restart().await;
    assert_eq!(answer(&app.deliver(&token).await), HANDLED);

    assert_eq!(app.writes().await, 1);
    let row = app.row("kp_1").await.expect("the user's row");
    assert_eq!(row.email.as_deref(), Some("ada@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_update_after_a_newer_one_changes_nothing() {
    let app = Running::start().await;
    let (t0, t1, t2) = (ago(30), ago(20), ago(10));
    let create = app
        .issuer
        .sign(&created(user("kp_1", "v0@example.com"), t0).into_claims());
    let newer = app
        .issuer
        .sign(&updated(user("kp_1", "v2@example.com"), t2).into_claims());
    let older = app
        .issuer
        .sign(&updated(user("kp_1", "v1@example.com"), t1).into_claims());

    assert_eq!(answer(&app.deliver(&create).await), HANDLED);
    assert_eq!(answer(&app.deliver(&newer).await), HANDLED);
    // A retry from yesterday: superseded (a 200: Kinde stops retrying it), and nothing changes.
    assert_eq!(answer(&app.deliver(&older).await), SUPERSEDED);

    let row = app.row("kp_1").await.expect("the user's row");
    assert_eq!(row.email.as_deref(), Some("v2@example.com"));
    assert_eq!(row.kinde_ts, micros(t2));
    assert_eq!(app.writes().await, 2, "the create and the newer update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_arriving_at_once_in_any_order_leave_the_newest() {
    let app = std::sync::Arc::new(Running::start().await);
    // Eight snapshots, one minute apart, delivered all at once, newest and oldest first.
    let order = [8, 1, 7, 2, 6, 3, 5, 4];
    let mut deliveries = tokio::task::JoinSet::new();
    for n in order {
        let event = updated(user("kp_1", &format!("v{n}@example.com")), ago(10 - n));
        let token = app.issuer.sign(&event.into_claims());
        let app = app.clone();
        // As Kinde does: a 409 (a newer update of the user is running) is retried.
        deliveries.spawn(async move {
            for _ in 0..600 {
                let got = app.deliver(&token).await;
                if answer(&got) != IN_PROGRESS {
                    return got;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("still in progress after 600 retries");
        });
    }
    while let Some(got) = deliveries.join_next().await {
        let got = got.expect("delivery task");
        assert!([HANDLED, SUPERSEDED].contains(&answer(&got)), "{got:?}");
    }

    let row = app.row("kp_1").await.expect("the user's row");
    assert_eq!(row.email.as_deref(), Some("v8@example.com"));
    let writes = app.writes().await;
    assert!((1..=8).contains(&writes), "{writes} writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_after_the_delete_does_not_bring_the_user_back() {
    let app = Running::start().await;
    let (t0, t1, t2) = (ago(30), ago(20), ago(10));
    let create = app
        .issuer
        .sign(&created(user("kp_1", "ada@example.com"), t0).into_claims());
    let delete = app.issuer.sign(&deleted("kp_1", t2).into_claims());
    let late_update = app
        .issuer
        .sign(&updated(user("kp_1", "late@example.com"), t1).into_claims());
    // The create's first delivery failed, and its retry comes after the delete too.
    let late_create = app
        .issuer
        .sign(&created(user("kp_1", "ada@example.com"), t0).into_claims());

    assert_eq!(answer(&app.deliver(&create).await), HANDLED);
    assert_eq!(answer(&app.deliver(&delete).await), HANDLED);
    assert_eq!(answer(&app.deliver(&late_update).await), SUPERSEDED);
    assert_eq!(answer(&app.deliver(&late_create).await), SUPERSEDED);

    let row = app.row("kp_1").await.expect("the tombstone");
    assert!(row.deleted);
    assert_eq!(row.email, None, "a delete clears the personal data");
    assert_eq!(row.first_name, None);
    assert_eq!(row.kinde_ts, micros(t2));
    assert_eq!(app.writes().await, 2, "the create and the delete");
    assert_eq!(app.get_user("kp_1").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_before_the_create_leaves_a_tombstone_the_create_cannot_cross() {
    let app = Running::start().await;
    let create = app
        .issuer
        .sign(&created(user("kp_1", "ada@example.com"), ago(20)).into_claims());
    let delete = app.issuer.sign(&deleted("kp_1", ago(10)).into_claims());

    assert_eq!(answer(&app.deliver(&delete).await), HANDLED);
    assert_eq!(answer(&app.deliver(&create).await), SUPERSEDED);

    let row = app.row("kp_1").await.expect("the tombstone");
    assert!(row.deleted);
    assert_eq!(row.email, None);
    assert_eq!(app.writes().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_with_only_the_id_stores_nulls() {
    let app = Running::start().await;
    let event = TestEvent::raw(
        "user.created",
        serde_json::json!({"user": {"id": "kp_min"}}),
    );
    assert_eq!(
        answer(&app.deliver(&app.issuer.sign(&event.into_claims())).await),
        HANDLED
    );

    let row = app.row("kp_min").await.expect("the user's row");
    assert_eq!(
        (
            row.email,
            row.first_name,
            row.is_suspended,
            row.is_password_reset_requested
        ),
        (None, None, None, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_answers_500_and_the_retry_applies_the_event() {
    let app = Running::start().await;
    // The database refuses writes for this user (a real SQLite error, raised by a trigger)…
    sqlx::query(
        "CREATE TRIGGER refuse_kp_flaky BEFORE INSERT ON users WHEN NEW.id = 'kp_flaky' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .execute(&app.db)
    .await
    .expect("create the trigger");
    let at = ago(10);
    let token = app
        .issuer
        .sign(&created(user("kp_flaky", "ada@example.com"), at).into_claims());

    assert_eq!(
        answer(&app.deliver(&token).await),
        (500, r#"{"error":"handler_failed"}"#)
    );
    assert_eq!(app.row("kp_flaky").await, None);

    // … until it recovers; Kinde's retry is the same token.
    sqlx::query("DROP TRIGGER refuse_kp_flaky")
        .execute(&app.db)
        .await
        .expect("drop the trigger");
    assert_eq!(answer(&app.deliver(&token).await), HANDLED);

    let row = app.row("kp_flaky").await.expect("the user's row");
    assert_eq!(row.email.as_deref(), Some("ada@example.com"));
    assert_eq!(row.kinde_ts, micros(at));
    assert_eq!(app.writes().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_is_mounted_where_kinde_posts() {
    let db = db::connect("sqlite::memory:")
        .await
        .expect("open the database");
    let webhooks = crate::webhooks("acme.kinde.com", db.clone()).expect("valid configuration");
    kinde_tower::testing::assert_mounted(crate::app(webhooks, db), crate::WEBHOOK_PATH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_delivery_changes_nothing() {
    let app = Running::start().await;
    let forged = app
        .issuer
        .forge(&created(user("kp_1", "evil@example.com"), ago(10)).into_claims());
    assert_eq!(
        answer(&app.deliver(&forged).await),
        (401, r#"{"error":"invalid_signature"}"#)
    );
    assert_eq!(app.row("kp_1").await, None);
    assert_eq!(app.writes().await, 0);
}
