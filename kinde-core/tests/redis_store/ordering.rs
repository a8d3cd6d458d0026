//! Ordering (the latest event per entity wins) across two receivers sharing Redis, on the single
//! server and on the cluster: the races, a late event, tombstones, independent entities.

use kinde_core::EntityOrdering;

use crate::rig::{ago, micros, rig, send, spawn_send, Redis};

fn ordered(b: kinde_core::WebhooksBuilder) -> kinde_core::WebhooksBuilder {
    b.ordering(EntityOrdering::latest_wins())
}

/// The newer event of a user runs on receiver A (held on the gate); the older one arrives at
/// receiver B meanwhile: superseded there and then, no handler runs, and its retries are
/// duplicates on either receiver.
async fn older_while_newer_runs(redis: Redis) {
    let r = rig(&redis, ordered).await;
    let (newer, newer_id) = r.event("user.updated", "kp_1", ago(1));
    let (older, _) = r.event("user.updated", "kp_1", ago(5));
    r.hold();
    let running = spawn_send(&r.a, &newer);
    assert_eq!(r.started().await, newer_id);
    assert_eq!(send(&r.b, &older).await, (200, "superseded"));
    assert_eq!(send(&r.b, &older).await, (200, "duplicate"));
    r.open();
    assert_eq!(running.await.unwrap(), (200, "handled"));
    assert_eq!(send(&r.a, &older).await, (200, "duplicate"));
    assert_eq!(send(&r.a, &newer).await, (200, "duplicate"));
    assert_eq!(r.calls(), vec![("user.updated".into(), "kp_1".into())]);
}

#[tokio::test]
async fn an_older_event_at_a_second_receiver_while_the_newer_runs_is_superseded() {
    if let Some(redis) = Redis::single().await {
        older_while_newer_runs(redis).await;
    }
}

#[tokio::test]
async fn an_older_event_at_a_second_receiver_while_the_newer_runs_is_superseded_on_a_cluster() {
    if let Some(redis) = Redis::cluster().await {
        older_while_newer_runs(redis).await;
    }
}

/// The older event runs on A (held); the newer one arrives at B meanwhile: 409 (Kinde retries
/// it), and once the older is done its retry is handled, seeing the older as the previous one.
async fn newer_while_older_runs(redis: Redis) {
    let r = rig(&redis, ordered).await;
    let (older_at, newer_at) = (ago(5), ago(1));
    let (older, older_id) = r.event("user.updated", "kp_1", older_at);
    let (newer, _) = r.event("user.updated", "kp_1", newer_at);
    r.hold();
    let running = spawn_send(&r.a, &older);
    assert_eq!(r.started().await, older_id);
    assert_eq!(send(&r.b, &newer).await, (409, "in_progress"));
    assert_eq!(send(&r.a, &newer).await, (409, "in_progress"));
    r.open();
    assert_eq!(running.await.unwrap(), (200, "handled"));
    assert_eq!(send(&r.b, &newer).await, (200, "handled"));
    assert_eq!(send(&r.a, &older).await, (200, "duplicate"));
    let seen = r.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].previous, None);
    assert_eq!(seen[1].previous.map(micros), Some(micros(older_at)));
}

#[tokio::test]
async fn a_newer_event_at_a_second_receiver_while_the_older_runs_is_409_then_handled() {
    if let Some(redis) = Redis::single().await {
        newer_while_older_runs(redis).await;
    }
}

#[tokio::test]
async fn a_newer_event_at_a_second_receiver_while_the_older_runs_is_409_then_handled_on_a_cluster()
{
    if let Some(redis) = Redis::cluster().await {
        newer_while_older_runs(redis).await;
    }
}

/// Kinde's retry order, over two receivers: what either applied counts for both; equal
/// timestamps both run; a deletion leaves a tombstone; another user is its own entity.
async fn latest_wins_and_tombstones(redis: Redis) {
    let r = rig(&redis, ordered).await;
    let (v2, _) = r.event("user.updated", "kp_1", ago(20));
    let (v1, _) = r.event("user.updated", "kp_1", ago(30));
    let tie_at = ago(15);
    let (tie_a, _) = r.event("user.updated", "kp_1", tie_at);
    let (tie_b, _) = r.event("user.updated", "kp_1", tie_at);
    let deleted_at = ago(10);
    let (deleted, _) = r.raw_event(
        "user.deleted",
        serde_json::json!({"user": {"id": "kp_1"}}),
        deleted_at,
    );
    let (late_update, _) = r.event("user.updated", "kp_1", ago(12));
    let (late_create, _) = r.event("user.created", "kp_1", ago(40));
    let (recreated, _) = r.event("user.created", "kp_1", ago(1));
    let (other, _) = r.event("user.created", "kp_2", ago(50));

    assert_eq!(send(&r.a, &v2).await, (200, "handled"));
    assert_eq!(send(&r.b, &v1).await, (200, "superseded"));
    assert_eq!(send(&r.b, &tie_a).await, (200, "handled"));
    assert_eq!(send(&r.a, &tie_b).await, (200, "handled"));
    assert_eq!(send(&r.a, &deleted).await, (200, "handled"));
    assert_eq!(send(&r.b, &late_update).await, (200, "superseded"));
    assert_eq!(send(&r.a, &late_create).await, (200, "superseded"));
    assert_eq!(send(&r.b, &other).await, (200, "handled"));
    assert_eq!(send(&r.b, &recreated).await, (200, "handled"));
    // Retries of what was superseded are duplicates.
    for token in [&v1, &late_update, &late_create] {
        assert_eq!(send(&r.a, token).await, (200, "duplicate"));
        assert_eq!(send(&r.b, token).await, (200, "duplicate"));
    }
    let calls: Vec<(String, String)> = [
        ("user.updated", "kp_1"),
        ("user.updated", "kp_1"),
        ("user.updated", "kp_1"),
        ("user.deleted", "kp_1"),
        ("user.created", "kp_2"),
        ("user.created", "kp_1"),
    ]
    .iter()
    .map(|(t, u)| ((*t).to_owned(), (*u).to_owned()))
    .collect();
    assert_eq!(r.calls(), calls);
    let seen = r.seen();
    assert_eq!(
        seen[3].previous.map(micros),
        Some(micros(tie_at)),
        "the deletion saw the tie"
    );
    assert_eq!(seen[4].previous, None, "another user starts afresh");
    assert_eq!(
        seen[5].previous.map(micros),
        Some(micros(deleted_at)),
        "the recreation sees the tombstone"
    );
}

#[tokio::test]
async fn the_latest_event_wins_across_two_receivers_and_a_deletion_leaves_a_tombstone() {
    if let Some(redis) = Redis::single().await {
        latest_wins_and_tombstones(redis).await;
    }
}

#[tokio::test]
async fn the_latest_event_wins_across_two_receivers_and_a_deletion_leaves_a_tombstone_on_a_cluster()
{
    if let Some(redis) = Redis::cluster().await {
        latest_wins_and_tombstones(redis).await;
    }
}

/// Many events of a few users, each delivered to both receivers at once, in shuffled order:
/// per user, what ran is in timestamp order (nothing older ran after something newer), the
/// newest of each user ran, and every delivery got a final answer.
async fn racing_deliveries_never_apply_out_of_order(redis: Redis) {
    let r = rig(&redis, ordered).await;
    const USERS: usize = 4;
    const PER_USER: i64 = 12;
    let mut events = Vec::new();
    for u in 0..USERS {
        for minute in 1..=PER_USER {
            let user = format!("kp_{u}");
            let (token, id) = r.event("user.updated", &user, ago(minute));
            events.push((token, id, user, minute));
        }
    }
    // A fixed shuffle (no randomness in what is asserted, only in interleaving).
    let n = events.len();
    let order: Vec<usize> = (0..n).map(|i| (i * 37) % n).collect();
    let mut tasks = Vec::new();
    for &i in &order {
        for webhooks in [&r.a, &r.b] {
            let (webhooks, token) = (webhooks.clone(), events[i].0.clone());
            tasks.push(tokio::spawn(async move {
                crate::deliver_until_settled(&webhooks, &token).await
            }));
        }
    }
    for t in tasks {
        let a = t.await.unwrap();
        assert!(
            matches!(a, (200, "handled" | "duplicate" | "superseded")),
            "{a:?}"
        );
    }
    let seen = r.seen();
    for u in 0..USERS {
        let user = format!("kp_{u}");
        let ran: Vec<i64> = seen
            .iter()
            .filter(|s| s.user == user)
            .map(|s| {
                events
                    .iter()
                    .find(|e| e.1 == s.event_id)
                    .map(|e| e.3)
                    .unwrap()
            })
            .collect();
        // Minutes ago: newer events have smaller numbers, so what ran must be decreasing.
        assert!(
            ran.windows(2).all(|w| w[0] > w[1]),
            "{user} ran out of order: {ran:?}"
        );
        assert_eq!(ran.last(), Some(&1), "{user}: the newest event ran");
    }
    // No event ran twice.
    let mut ids: Vec<&str> = seen.iter().map(|s| s.event_id.as_str()).collect();
    ids.sort_unstable();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deliveries_to_two_receivers_never_apply_an_entity_out_of_order() {
    if let Some(redis) = Redis::single().await {
        racing_deliveries_never_apply_out_of_order(redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deliveries_to_two_receivers_never_apply_an_entity_out_of_order_on_a_cluster() {
    if let Some(redis) = Redis::cluster().await {
        racing_deliveries_never_apply_out_of_order(redis).await;
    }
}
