//! Ordering and parking on the file store (issue 19): the store protocol suite, and receivers
//! restarted on the same file keeping what ordering and parking recorded — an entity's applied
//! timestamp and tombstone, failure counts, parked events — and replaying after a restart.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kinde_core::event::{Event, UserCreated, UserDeleted, UserUpdated};
use kinde_core::store::{FileStore, FileStoreConfig};
use kinde_core::testing::{check_store_protocol, JwksServer, ManualClock, TestEvent, TestIssuer};
use kinde_core::{EntityOrdering, EventId, Outcome, State, Webhooks, WebhooksBuilder};
use serde_json::json;
use time::OffsetDateTime;

use super::{dir, t0};

#[tokio::test]
async fn the_store_protocol_holds() {
    let d = dir();
    let s = FileStore::open(d.path().join("s.redb")).unwrap();
    check_store_protocol(&s).await;
    // And again on the reopened file, whose tables are not empty any more.
    drop(s);
    let s = FileStore::open(d.path().join("s.redb")).unwrap();
    check_store_protocol(&s).await;
    // With a manual clock (the TTLs are measured on it, far from the system clock's time).
    drop(s);
    let clock = ManualClock::new(t0());
    let s = FileStore::new(FileStoreConfig::new(d.path().join("s.redb")).clock(clock)).unwrap();
    check_store_protocol(&s).await;
}

/// What the handlers share: calls, whether they fail, and the previous applied time each saw.
#[derive(Clone, Default)]
struct App {
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    previous: Arc<Mutex<Vec<Option<OffsetDateTime>>>>,
}

impl App {
    fn run(&self, previous: Option<OffsetDateTime>) -> Result<(), String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.previous.lock().unwrap().push(previous);
        if self.failing.load(Ordering::SeqCst) {
            return Err("told to fail".into());
        }
        Ok(())
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A receiver on the store file at `path` (opened now), as `configure` sets it up.
    fn receiver(
        &self,
        jwks: &JwksServer,
        path: &Path,
        configure: impl FnOnce(WebhooksBuilder<App>) -> WebhooksBuilder<App>,
    ) -> Webhooks {
        let builder = Webhooks::builder()
            .issuer(jwks.url())
            .store(FileStore::open(path).expect("open the store file"))
            .state(self.clone())
            .on(async |State(app): State<App>, e: Event<UserCreated>| {
                app.run(e.meta.previous_applied_at)
            })
            .on(async |State(app): State<App>, e: Event<UserUpdated>| {
                app.run(e.meta.previous_applied_at)
            })
            .on(async |State(app): State<App>, e: Event<UserDeleted>| {
                app.run(e.meta.previous_applied_at)
            });
        configure(builder).build().expect("a valid receiver")
    }
}

fn user(id: &str) -> serde_json::Value {
    json!({"user": {"id": id, "email": format!("{id}@example.com")}})
}

fn ago(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(minutes)
}

async fn send(webhooks: &Webhooks, token: &str) -> (u16, &'static str) {
    let resp = webhooks
        .handle(&http::HeaderMap::new(), token.as_bytes())
        .await;
    (resp.status().as_u16(), resp.outcome().code())
}

#[tokio::test]
async fn an_entitys_applied_timestamp_and_tombstone_survive_a_restart() {
    let d = dir();
    let path = d.path().join("s.redb");
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let sign =
        |ty: &str, data, at| issuer.sign(&TestEvent::raw(ty, data).timestamp(at).into_claims());
    let (applied_at, deleted_at) = (ago(2), ago(3));
    let newer = sign("user.updated", user("kp_1"), applied_at);
    let delete = sign("user.deleted", json!({"user": {"id": "kp_2"}}), deleted_at);
    let older = sign("user.updated", user("kp_1"), ago(10));
    let resurrect = sign("user.created", user("kp_2"), ago(10));
    let newest = sign("user.updated", user("kp_1"), ago(1));
    let app = App::default();
    let ordered = |b: WebhooksBuilder<App>| b.ordering(EntityOrdering::latest_wins());

    let first = app.receiver(&jwks, &path, ordered);
    assert_eq!(send(&first, &newer).await, (200, "handled"));
    assert_eq!(send(&first, &delete).await, (200, "handled"));
    drop(first);

    let second = app.receiver(&jwks, &path, ordered);
    assert_eq!(send(&second, &older).await, (200, "superseded"));
    assert_eq!(
        send(&second, &resurrect).await,
        (200, "superseded"),
        "a deleted user does not come back"
    );
    assert_eq!(app.calls(), 2, "no handler ran for the superseded events");
    assert_eq!(send(&second, &newest).await, (200, "handled"));
    // The handler of the newest event saw the time of the one applied before the restart.
    let micros = |t: OffsetDateTime| t.unix_timestamp_nanos() / 1000;
    let seen = app.previous.lock().unwrap().clone();
    assert_eq!(
        seen.last().copied().flatten().map(micros),
        Some(micros(applied_at))
    );
    drop(second);

    // The superseded events were recorded handled, durably: their retries are duplicates.
    let third = app.receiver(&jwks, &path, ordered);
    assert_eq!(send(&third, &older).await, (200, "duplicate"));
    assert_eq!(send(&third, &resurrect).await, (200, "duplicate"));
    assert_eq!(app.calls(), 3);
}

#[tokio::test]
async fn failure_counts_and_a_parked_event_survive_restarts_and_replay_after_one() {
    let d = dir();
    let path = d.path().join("s.redb");
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let event = TestEvent::raw("user.updated", user("kp_1")).timestamp(ago(1));
    let id = EventId::new(event.id()).unwrap();
    let token = issuer.sign(&event.into_claims());
    let app = App::default();
    app.failing.store(true, Ordering::SeqCst);
    let parking = |b: WebhooksBuilder<App>| b.park_after(3);

    // Two failures, each in a receiver of its own: the count is kept across the restart.
    for _ in 0..2 {
        let webhooks = app.receiver(&jwks, &path, parking);
        assert_eq!(send(&webhooks, &token).await, (500, "handler_failed"));
    }
    let webhooks = app.receiver(&jwks, &path, parking);
    assert_eq!(
        send(&webhooks, &token).await,
        (200, "parked"),
        "the third failure parks"
    );
    drop(webhooks);

    let webhooks = app.receiver(&jwks, &path, parking);
    assert_eq!(send(&webhooks, &token).await, (200, "parked"));
    assert_eq!(app.calls(), 3, "a parked event's retries run nothing");
    let parked = webhooks.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    let p = &parked[0];
    assert_eq!(
        (
            &p.event_id,
            p.event_type.as_str(),
            p.attempts,
            p.token.as_str()
        ),
        (&id, "user.updated", 3, token.as_str())
    );
    assert!(p.last_error.contains("told to fail"), "{}", p.last_error);
    assert!(p.first_attempt_ms <= p.last_attempt_ms);
    // A replay that fails again keeps it parked, one attempt more; that survives a restart too.
    let replayed = webhooks.replay(&id).await.unwrap();
    assert!(matches!(replayed, Outcome::Parked), "{replayed:?}");
    drop(webhooks);

    let webhooks = app.receiver(&jwks, &path, parking);
    let parked = webhooks.parked().await.unwrap();
    assert_eq!(parked.iter().map(|p| p.attempts).collect::<Vec<_>>(), [4]);
    assert_eq!(parked[0].first_attempt_ms, p.first_attempt_ms);
    // Fixed: the replay runs it, unparks it and records it handled.
    app.failing.store(false, Ordering::SeqCst);
    let replayed = webhooks.replay(&id).await.unwrap();
    assert!(matches!(replayed, Outcome::Handled), "{replayed:?}");
    assert_eq!(app.calls(), 5);
    assert_eq!(webhooks.parked().await.unwrap(), []);
    assert_eq!(send(&webhooks, &token).await, (200, "duplicate"));
    drop(webhooks);

    let webhooks = app.receiver(&jwks, &path, parking);
    assert_eq!(webhooks.parked().await.unwrap(), []);
    assert_eq!(send(&webhooks, &token).await, (200, "duplicate"));
    assert!(webhooks.replay(&id).await.is_err(), "no longer parked");
    assert_eq!(app.calls(), 5);
}

/// A receiver on the file store keeps "never twice" across a restart: the same token after
/// the restart is a duplicate and runs nothing.
#[tokio::test]
async fn a_receiver_restarted_on_the_same_file_answers_duplicate() {
    let d = dir();
    let path = d.path().join("s.redb");
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let app = App::default();
    let webhooks = app.receiver(&jwks, &path, |b| b);
    assert_eq!(send(&webhooks, &token).await, (200, "handled"));
    drop(webhooks);
    let webhooks = app.receiver(&jwks, &path, |b| b);
    assert_eq!(send(&webhooks, &token).await, (200, "duplicate"));
    assert_eq!(app.calls(), 1);
}
