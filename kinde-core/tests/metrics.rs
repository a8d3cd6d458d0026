//! The metrics a delivery records (feature `metrics`), read back through a real recorder.
#![cfg(feature = "metrics")]

use kinde_core::testing::http::HeaderMap;
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::{Event, Webhooks};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

#[tokio::test]
async fn deliveries_handler_time_and_jwks_fetches_are_recorded_with_bounded_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let issuer = TestIssuer::new();
    let webhooks = Webhooks::builder()
        .issuer(issuer.serve().await.url())
        .on_type("user.created", |_: Event| async {})
        .build()
        .unwrap();
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let headers = HeaderMap::new();
    for expected in [200, 200] {
        assert_eq!(
            webhooks.handle(&headers, token.as_bytes()).await.status(),
            expected
        );
    }
    let forged = issuer.forge(&TestEvent::sample("user.created").into_claims());
    assert_eq!(
        webhooks.handle(&headers, forged.as_bytes()).await.status(),
        401
    );
    let parking = Webhooks::builder()
        .issuer(issuer.serve().await.url())
        .park_after(1)
        .on_type("role.created", |_: Event| async { Err::<(), _>("poison") })
        .build()
        .unwrap();
    let poison = issuer.sign(&TestEvent::sample("role.created").into_claims());
    assert_eq!(
        parking
            .handle(&headers, poison.as_bytes())
            .await
            .outcome()
            .code(),
        "parked"
    );
    let unknown = TestEvent::sample("x.y").claim("type", serde_json::json!("something.new"));
    let ignored = issuer.sign(&unknown.into_claims());
    assert_eq!(
        webhooks.handle(&headers, ignored.as_bytes()).await.status(),
        200
    );

    let mut counters = Vec::new();
    let mut histograms = Vec::new();
    for (key, _unit, _desc, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = key.name().to_owned();
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => counters.push((name, labels, n)),
            (MetricKind::Histogram, DebugValue::Histogram(v)) => {
                histograms.push((name, labels, v.len()))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    counters.sort();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        counters,
        vec![
            (
                "kinde_webhook_deliveries_total".to_owned(),
                s(&["event_type=role.created", "outcome=parked"]),
                1
            ),
            (
                "kinde_webhook_deliveries_total".to_owned(),
                s(&["event_type=something.new", "outcome=ignored"]),
                1
            ),
            (
                "kinde_webhook_deliveries_total".to_owned(),
                s(&["event_type=unverified", "outcome=invalid_signature"]),
                1
            ),
            (
                "kinde_webhook_deliveries_total".to_owned(),
                s(&["event_type=user.created", "outcome=duplicate"]),
                1
            ),
            (
                "kinde_webhook_deliveries_total".to_owned(),
                s(&["event_type=user.created", "outcome=handled"]),
                1
            ),
            (
                "kinde_webhook_jwks_fetches_total".to_owned(),
                s(&["result=ok"]),
                2
            ),
            (
                "kinde_webhook_parked_total".to_owned(),
                s(&["event_type=role.created"]),
                1
            ),
        ]
    );
    histograms.sort();
    assert_eq!(
        histograms,
        vec![
            (
                "kinde_webhook_handler_duration_seconds".to_owned(),
                s(&["event_type=role.created"]),
                1
            ),
            (
                "kinde_webhook_handler_duration_seconds".to_owned(),
                s(&["event_type=user.created"]),
                1
            )
        ]
    );
}
