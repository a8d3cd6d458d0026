//! Sync-grade delivery through `Webhooks::handle`: the latest event per entity wins, and a
//! poison event is parked instead of failing forever (issue 19), with the memory store.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::assert_answer;
use kinde_core::event::{Event, UserCreated, UserDeleted, UserUpdated};
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::{EntityOrdering, EventId, Outcome, State, Webhooks, WebhooksBuilder};
use serde_json::json;
use time::OffsetDateTime;

/// What handlers saw: (type, user id, previous applied timestamp).
type Seen = Arc<Mutex<Vec<(String, String, Option<OffsetDateTime>)>>>;

struct Rig {
    issuer: TestIssuer,
    webhooks: Webhooks,
    seen: Seen,
    /// Handler calls that fail before one succeeds.
    fail: Arc<AtomicUsize>,
}

fn user(id: &str) -> serde_json::Value {
    json!({"user": {"id": id, "email": format!("{id}@example.com")}})
}

async fn rig(
    configure: impl FnOnce(
        WebhooksBuilder<(Seen, Arc<AtomicUsize>)>,
    ) -> WebhooksBuilder<(Seen, Arc<AtomicUsize>)>,
) -> Rig {
    let issuer = TestIssuer::new();
    let seen = Seen::default();
    let fail = Arc::new(AtomicUsize::new(0));
    type S = State<(Seen, Arc<AtomicUsize>)>;
    async fn record(
        (seen, fail): &(Seen, Arc<AtomicUsize>),
        ty: &str,
        id: &str,
        prev: Option<OffsetDateTime>,
    ) -> Result<(), String> {
        seen.lock()
            .unwrap()
            .push((ty.to_owned(), id.to_owned(), prev));
        let failing = fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err("told to fail".into());
        }
        Ok(())
    }
    let builder = Webhooks::builder()
        .issuer(issuer.serve().await.url())
        .state((seen.clone(), fail.clone()))
        .on(async |State(s): S, e: Event<UserCreated>| {
            record(
                &s,
                "user.created",
                &e.data.user.id,
                e.meta.previous_applied_at,
            )
            .await
        })
        .on(async |State(s): S, e: Event<UserUpdated>| {
            record(
                &s,
                "user.updated",
                &e.data.user.id,
                e.meta.previous_applied_at,
            )
            .await
        })
        .on(async |State(s): S, e: Event<UserDeleted>| {
            record(
                &s,
                "user.deleted",
                &e.data.user.id,
                e.meta.previous_applied_at,
            )
            .await
        })
        .fallback(async |State(s): S, e: Event| {
            let id = e.data["user"]["id"].as_str().unwrap_or_default().to_owned();
            record(&s, &e.meta.event_type, &id, e.meta.previous_applied_at).await
        });
    Rig {
        webhooks: configure(builder).build().unwrap(),
        issuer,
        seen,
        fail,
    }
}

impl Rig {
    fn token(&self, ty: &str, data: serde_json::Value, at: OffsetDateTime) -> String {
        self.issuer
            .sign(&TestEvent::raw(ty, data).timestamp(at).into_claims())
    }

    async fn send(&self, token: &str) -> kinde_core::WebhookResponse {
        self.webhooks
            .handle(&http::HeaderMap::new(), token.as_bytes())
            .await
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(t, id, _)| (t.clone(), id.clone()))
            .collect()
    }
}

fn ago(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(minutes)
}

#[tokio::test]
async fn a_late_update_is_superseded_and_its_retries_are_duplicates() {
    let r = rig(|b| b.ordering(EntityOrdering::latest_wins())).await;
    let newer = r.token("user.updated", user("kp_1"), ago(1));
    let older = r.token("user.updated", user("kp_1"), ago(60));
    assert_answer(&r.send(&newer).await, 200, "handled");
    let late = r.send(&older).await;
    assert_answer(&late, 200, "superseded");
    assert_eq!(late.body(), r#"{"status":"superseded"}"#);
    assert_answer(&r.send(&older).await, 200, "duplicate");
    assert_eq!(r.calls().len(), 1);
}

#[tokio::test]
async fn equal_timestamps_are_not_superseded_and_the_handler_sees_the_previous_time() {
    let r = rig(|b| b.ordering(EntityOrdering::latest_wins())).await;
    let at = ago(5);
    let first = r.token("user.updated", user("kp_1"), at);
    let second = r.token("user.updated", user("kp_1"), at);
    assert_answer(&r.send(&first).await, 200, "handled");
    assert_answer(&r.send(&second).await, 200, "handled");
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen[0].2, None, "nothing applied before the first");
    let micros = |t: OffsetDateTime| t.unix_timestamp_nanos() / 1000;
    assert_eq!(seen[1].2.map(micros), Some(micros(at)));
}

#[tokio::test]
async fn a_delete_leaves_a_tombstone_and_independent_entities_are_untouched() {
    let r = rig(|b| b.ordering(EntityOrdering::latest_wins())).await;
    let created = r.token("user.created", user("kp_1"), ago(30));
    let deleted = r.token("user.deleted", json!({"user": {"id": "kp_1"}}), ago(10));
    let late_update = r.token("user.updated", user("kp_1"), ago(20));
    let late_create = r.token("user.created", user("kp_1"), ago(30));
    assert_answer(&r.send(&created).await, 200, "handled");
    assert_answer(&r.send(&deleted).await, 200, "handled");
    assert_answer(&r.send(&late_update).await, 200, "superseded");
    assert_answer(&r.send(&late_create).await, 200, "superseded");
    // Another user, older than all of those: its own entity.
    let other = r.token("user.created", user("kp_2"), ago(40));
    assert_answer(&r.send(&other).await, 200, "handled");
    assert_eq!(
        r.calls(),
        vec![
            ("user.created".into(), "kp_1".into()),
            ("user.deleted".into(), "kp_1".into()),
            ("user.created".into(), "kp_2".into()),
        ]
    );
}

#[tokio::test]
async fn authentication_events_and_unkeyed_types_are_never_superseded() {
    let r = rig(|b| b.ordering(EntityOrdering::latest_wins())).await;
    assert_answer(
        &r.send(&r.token("user.updated", user("kp_1"), ago(1))).await,
        200,
        "handled",
    );
    for ty in [
        "user.authenticated",
        "user.authentication_failed",
        "passkey.added",
    ] {
        let old = r.token(ty, json!({"user": {"id": "kp_1"}}), ago(60));
        assert_answer(&r.send(&old).await, 200, "handled");
    }
    assert_eq!(r.calls().len(), 4);
}

#[tokio::test]
async fn ordering_applies_whatever_handler_receives_the_event_and_custom_keys_work() {
    let r = rig(|b| {
        b.ordering(EntityOrdering::latest_wins().key(
            "customer.plan_changed",
            "customer",
            "/customer_id",
        ))
    })
    .await;
    let plan = |at| r.token("customer.plan_changed", json!({"customer_id": "c_1"}), at);
    assert_answer(&r.send(&plan(ago(1))).await, 200, "handled");
    assert_answer(&r.send(&plan(ago(9))).await, 200, "superseded");
    // A keyed type whose key cannot be read is not ordered: the typed handler refuses it.
    let keyless = r.token("user.updated", json!({"user": {}}), ago(1));
    assert_answer(&r.send(&keyless).await, 500, "unparseable_event");
}

#[tokio::test]
async fn without_ordering_a_late_update_runs() {
    let r = rig(|b| b).await;
    assert_answer(
        &r.send(&r.token("user.updated", user("kp_1"), ago(1))).await,
        200,
        "handled",
    );
    assert_answer(
        &r.send(&r.token("user.updated", user("kp_1"), ago(60)))
            .await,
        200,
        "handled",
    );
}

#[tokio::test]
async fn a_failing_handler_is_parked_on_the_nth_failure_never_409() {
    let r = rig(|b| b.park_after(3)).await;
    r.fail.store(usize::MAX, Ordering::SeqCst);
    let token = r.token("user.updated", user("kp_1"), ago(1));
    assert_answer(&r.send(&token).await, 500, "handler_failed");
    assert_answer(&r.send(&token).await, 500, "handler_failed");
    let parked = r.send(&token).await;
    assert_answer(&parked, 200, "parked");
    assert_eq!(parked.body(), r#"{"status":"parked"}"#);
    // Later deliveries answer 200 without running the handler.
    assert_answer(&r.send(&token).await, 200, "parked");
    assert_eq!(r.calls().len(), 3);
    let list = r.webhooks.parked().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].attempts, 3);
    assert_eq!(list[0].event_type, "user.updated");
    assert!(
        list[0].last_error.contains("told to fail"),
        "{}",
        list[0].last_error
    );
    assert_eq!(list[0].token, token);
}

#[tokio::test]
async fn an_unparseable_event_is_parked_too() {
    let r = rig(|b| b.park_after(2)).await;
    let broken = r.token("user.created", json!({"user": {"email": "no id"}}), ago(1));
    assert_answer(&r.send(&broken).await, 500, "unparseable_event");
    assert_answer(&r.send(&broken).await, 200, "parked");
    assert_eq!(r.calls().len(), 0);
    assert!(r.webhooks.parked().await.unwrap()[0]
        .last_error
        .starts_with("unparseable event"));
}

#[tokio::test]
async fn a_replay_runs_again_under_a_fresh_claim_and_a_failed_replay_stays_parked() {
    let r = rig(|b| b.park_after(1)).await;
    r.fail.store(2, Ordering::SeqCst);
    // Older than the replay window: a replay skips it on purpose.
    let stale_later = r.token("user.updated", user("kp_1"), ago(60));
    assert_answer(&r.send(&stale_later).await, 200, "parked");
    let id: EventId = r.webhooks.parked().await.unwrap()[0].event_id.clone();
    // Still failing: still parked, one more attempt.
    assert!(matches!(
        r.webhooks.replay(&id).await.unwrap(),
        Outcome::Parked
    ));
    assert_eq!(r.webhooks.parked().await.unwrap()[0].attempts, 2);
    // Fixed: handled, unparked, and its deliveries are duplicates.
    assert!(matches!(
        r.webhooks.replay(&id).await.unwrap(),
        Outcome::Handled
    ));
    assert!(r.webhooks.parked().await.unwrap().is_empty());
    assert_answer(&r.send(&stale_later).await, 200, "duplicate");
    assert_eq!(r.calls().len(), 3);
    assert!(matches!(
        r.webhooks.replay(&id).await,
        Err(kinde_core::ReplayError::NotParked(_))
    ));
}

#[tokio::test]
async fn a_replay_goes_through_ordering() {
    let r = rig(|b| b.park_after(1).ordering(EntityOrdering::latest_wins())).await;
    r.fail.store(1, Ordering::SeqCst);
    let old = r.token("user.updated", user("kp_1"), ago(60));
    assert_answer(&r.send(&old).await, 200, "parked");
    let id = r.webhooks.parked().await.unwrap()[0].event_id.clone();
    let new = r.token("user.updated", user("kp_1"), ago(1));
    assert_answer(&r.send(&new).await, 200, "handled");
    // The parked event is older than what was applied since: superseded, and unparked.
    assert!(matches!(
        r.webhooks.replay(&id).await.unwrap(),
        Outcome::Superseded
    ));
    assert!(r.webhooks.parked().await.unwrap().is_empty());
    assert_answer(&r.send(&old).await, 200, "duplicate");
}

#[tokio::test]
async fn a_full_parked_set_answers_500_and_drops_nothing() {
    let r = rig(|b| {
        b.park_after(1)
            .park_limits(kinde_core::store::ParkLimits::default().events(1))
    })
    .await;
    r.fail.store(usize::MAX, Ordering::SeqCst);
    let first = r.token("user.updated", user("kp_1"), ago(1));
    let second = r.token("user.updated", user("kp_2"), ago(1));
    assert_answer(&r.send(&first).await, 200, "parked");
    assert_answer(&r.send(&second).await, 500, "handler_failed");
    // Not parked and not forgotten: the next delivery is a new attempt.
    assert_answer(&r.send(&second).await, 500, "handler_failed");
    assert_eq!(r.webhooks.parked().await.unwrap().len(), 1);
}

#[tokio::test]
async fn parking_off_keeps_failing_with_500() {
    let r = rig(|b| b).await;
    r.fail.store(usize::MAX, Ordering::SeqCst);
    let token = r.token("user.updated", user("kp_1"), ago(1));
    for _ in 0..4 {
        assert_answer(&r.send(&token).await, 500, "handler_failed");
    }
    assert!(r.webhooks.parked().await.unwrap().is_empty());
}
