//! The contract of `KINDE_ORDERING`, `KINDE_PARK_AFTER` and `METRICS_BIND`, against a real
//! binary: answers stay 200 with their bodies, no `handled` line for a superseded or parked
//! event, and Prometheus text at `http://METRICS_BIND/metrics`.

use std::time::Duration;

use kinde_core::testing::{TestEvent, TestIssuer};
use serde_json::json;
use time::OffsetDateTime;

use super::{free_addr, redis_env, Receiver};

const PATH: &str = "/kinde/webhook";

fn ago(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(minutes)
}

fn update(issuer: &TestIssuer, user: &str, at: OffsetDateTime) -> (String, String) {
    let ev = TestEvent::raw("user.updated", json!({"user": {"id": user}})).timestamp(at);
    let id = ev.id().to_owned();
    (id, issuer.sign(&ev.into_claims()))
}

/// `KINDE_ORDERING=1` with the memory store, or with `KINDE_STORE_PATH`: a late update is
/// answered `200 {"status":"superseded"}` and prints nothing.
pub async fn ordering(bin: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    for store in [None, Some(file.to_str().unwrap().to_owned())] {
        let issuer = TestIssuer::new();
        let jwks = issuer.serve().await;
        let mut envs = vec![("KINDE_DOMAIN", jwks.url()), ("KINDE_ORDERING", "1".into())];
        if let Some(path) = &store {
            envs.push(("KINDE_STORE_PATH", path.clone()));
        }
        let mut r = Receiver::start(bin, &envs).await;
        let (newer_id, newer) = update(&issuer, "kp_1", ago(1));
        let (_, older) = update(&issuer, "kp_1", ago(60));
        assert_eq!(
            r.deliver(PATH, &newer).await,
            (200, r#"{"status":"handled"}"#.into())
        );
        assert_eq!(
            r.next_line().await.as_deref(),
            Some(format!("handled user.updated {newer_id}").as_str())
        );
        assert_eq!(
            r.deliver(PATH, &older).await,
            (200, r#"{"status":"superseded"}"#.into())
        );
        assert_eq!(
            r.deliver(PATH, &older).await,
            (200, r#"{"status":"duplicate"}"#.into())
        );
        let rest = r.stop().await;
        assert!(rest.is_empty(), "no line for a superseded event: {rest:?}");
    }
}

/// Without `KINDE_ORDERING`, the same late update runs its handler.
pub async fn ordering_off(bin: &str) {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let mut r = Receiver::start(bin, &[("KINDE_DOMAIN", jwks.url())]).await;
    for at in [ago(1), ago(60)] {
        let (id, token) = update(&issuer, "kp_1", at);
        assert_eq!(r.deliver(PATH, &token).await.0, 200);
        assert_eq!(
            r.next_line().await.as_deref(),
            Some(format!("handled user.updated {id}").as_str())
        );
    }
    r.stop().await;
}

/// Two receivers sharing Redis with `KINDE_ORDERING=1`: the newer update applied at one makes
/// the older superseded at the other.
pub async fn ordering_across_receivers(bin: &str) {
    let Some(url) = redis_env("KINDE_TEST_REDIS_URL") else {
        return;
    };
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let envs = [
        ("KINDE_DOMAIN", jwks.url()),
        ("REDIS_URL", url),
        ("KINDE_ORDERING", "true".into()),
    ];
    let mut a = Receiver::start(bin, &envs).await;
    let b = Receiver::start(bin, &envs).await;
    let user = format!("kp_{:x}", rand_u64());
    let (newer_id, newer) = update(&issuer, &user, ago(1));
    let (_, older) = update(&issuer, &user, ago(60));
    assert_eq!(
        a.deliver(PATH, &newer).await,
        (200, r#"{"status":"handled"}"#.into())
    );
    assert_eq!(
        a.next_line().await.as_deref(),
        Some(format!("handled user.updated {newer_id}").as_str())
    );
    assert_eq!(
        b.deliver(PATH, &older).await,
        (200, r#"{"status":"superseded"}"#.into())
    );
    assert!(b.stop().await.is_empty());
    assert!(a.stop().await.is_empty());
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// `KINDE_PARK_AFTER=2`: an event whose typed parse fails is answered 500, then parked (200
/// `{"status":"parked"}`) and stays parked; nothing is printed for it.
pub async fn parking(bin: &str) {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let mut r = Receiver::start(
        bin,
        &[
            ("KINDE_DOMAIN", jwks.url()),
            ("KINDE_PARK_AFTER", "2".into()),
        ],
    )
    .await;
    let poison = issuer
        .sign(&TestEvent::raw("user.created", json!({"user": {"email": "no id"}})).into_claims());
    assert_eq!(
        r.deliver(PATH, &poison).await,
        (500, r#"{"error":"unparseable_event"}"#.into())
    );
    for _ in 0..2 {
        assert_eq!(
            r.deliver(PATH, &poison).await,
            (200, r#"{"status":"parked"}"#.into())
        );
    }
    // The endpoint still handles everything else.
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    assert_eq!(
        r.deliver(PATH, &issuer.sign(&ev.into_claims())).await.0,
        200
    );
    assert_eq!(
        r.next_line().await.as_deref(),
        Some(format!("handled user.created {id}").as_str())
    );
    let rest = r.stop().await;
    assert!(rest.is_empty(), "no line for a parked event: {rest:?}");
}

/// `METRICS_BIND`: Prometheus text at `/metrics`, already served when `/health` answers, with
/// the documented names (no unit suffix) and the handler duration as a histogram.
pub async fn metrics(bin: &str) {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let metrics = free_addr();
    let mut r = Receiver::start(
        bin,
        &[
            ("KINDE_DOMAIN", jwks.url()),
            ("METRICS_BIND", metrics.to_string()),
        ],
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("http://{metrics}/metrics");
    // `Receiver::start` returned once /health said 200: the listener must be there already.
    let first = client
        .get(&url)
        .send()
        .await
        .expect("metrics served before /health");
    assert_eq!(first.status(), 200);
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    assert_eq!(
        r.deliver(PATH, &issuer.sign(&ev.into_claims())).await.0,
        200
    );
    assert_eq!(
        r.next_line().await.as_deref(),
        Some(format!("handled user.created {id}").as_str())
    );
    assert_eq!(
        r.post(
            PATH,
            &issuer.forge(&TestEvent::sample("user.created").into_claims())
        )
        .await,
        401
    );
    let text = client.get(&url).send().await.unwrap().text().await.unwrap();
    for needle in [
        r#"kinde_webhook_deliveries_total{outcome="handled",event_type="user.created"} 1"#,
        r#"kinde_webhook_deliveries_total{outcome="invalid_signature",event_type="unverified"} 1"#,
        r#"kinde_webhook_handler_duration_seconds_bucket{event_type="user.created",le="0.001"}"#,
        r#"kinde_webhook_handler_duration_seconds_count{event_type="user.created"} 1"#,
        r#"kinde_webhook_jwks_fetches_total{result="ok"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    r.stop().await;
}
