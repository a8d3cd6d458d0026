//! The core path against its physical limit.
//!
//! - `handle/new_event`: verify + parse + replay window + dedupe (in-memory) + dispatch of one
//!   new `user.created`, on a warm JWKS cache, without a tracing subscriber;
//! - `handle/new_event_info_span`: the same with the receivers' subscriber (an INFO `fmt`
//!   subscriber without ANSI, writing to `io::sink`): the `kinde_webhook` span is built and its
//!   fields recorded, the per-delivery DEBUG events are filtered out;
//! - `handle/new_event_prometheus` (built with `--features metrics` only): the same as
//!   `new_event` with a Prometheus recorder installed (`metrics-exporter-prometheus`, as the
//!   receivers install it), so the metrics are recorded;
//! - `handle/duplicate`: an event already handled;
//! - `rs256_verify`: one bare RS256 signature check of the same token with the same key, already
//!   parsed, through the same crypto backend (the key the receiver's cache holds): the
//!   primitive no receiver can beat.
//!
//! Run: `cargo bench -p kinde-core --bench pipeline` (aws-lc-rs);
//! `cargo bench -p kinde-core --bench pipeline --no-default-features --features
//! rust-crypto,http-jwks` (the pure-Rust backend); add `--features metrics` for the metrics.
//! `KINDE_BENCH_POOL` (default 2000) sets how many tokens are signed up front (a smaller pool
//! for profiling under valgrind).

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::verify::StaticKeySource;
use kinde_core::Webhooks;

fn pool() -> usize {
    std::env::var("KINDE_BENCH_POOL")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

fn receiver(issuer: &TestIssuer) -> Webhooks {
    Webhooks::builder()
        .key_source(StaticKeySource::new(issuer.jwks().to_string()))
        .on(|e: Event<UserCreated>| async move {
            std::hint::black_box(e.data.user.id.len());
            Ok::<_, std::convert::Infallible>(())
        })
        .build()
        .expect("receiver")
}

/// Times `iters` new events: a fresh receiver (fresh store) per pass over the pool, warmed
/// outside the timed region, so every timed delivery is a new event.
fn new_events(
    rt: &tokio::runtime::Runtime,
    issuer: &TestIssuer,
    tokens: &[String],
    iters: u64,
) -> Duration {
    let headers = http::HeaderMap::new();
    rt.block_on(async {
        let mut total = Duration::ZERO;
        let mut done = 0u64;
        while done < iters {
            let webhooks = receiver(issuer);
            webhooks.jwks().refresh().await.unwrap();
            let n = (iters - done).min(tokens.len() as u64) as usize;
            let start = Instant::now();
            for t in &tokens[..n] {
                let r = webhooks.handle(&headers, t.as_bytes()).await;
                debug_assert!(r.outcome().is_handled());
                let _ = std::hint::black_box(r);
            }
            total += start.elapsed();
            done += n as u64;
        }
        total
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = TestIssuer::new();
    let tokens: Vec<String> = (0..pool())
        .map(|_| issuer.sign(&TestEvent::sample("user.created").into_claims()))
        .collect();
    let headers = http::HeaderMap::new();
    eprintln!(
        "crypto backend: {}; metrics feature: {}",
        kinde_core::crypto_backend(),
        cfg!(feature = "metrics")
    );

    let mut group = c.benchmark_group("handle");
    group.bench_function("new_event", |b| {
        b.iter_custom(|iters| new_events(&rt, &issuer, &tokens, iters))
    });
    group.bench_function("new_event_info_span", |b| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(std::io::sink)
            .finish();
        let dispatch = tracing::Dispatch::new(subscriber);
        b.iter_custom(|iters| {
            tracing::dispatcher::with_default(&dispatch, || {
                new_events(&rt, &issuer, &tokens, iters)
            })
        })
    });
    #[cfg(feature = "metrics")]
    group.bench_function("new_event_prometheus", |b| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        b.iter_custom(|iters| {
            metrics::with_local_recorder(&recorder, || new_events(&rt, &issuer, &tokens, iters))
        });
        assert!(
            handle.render().contains(
                r#"kinde_webhook_deliveries_total{outcome="handled",event_type="user.created"}"#
            ),
            "the recorder saw the deliveries"
        );
    });
    let webhooks = receiver(&issuer);
    let _ = rt.block_on(webhooks.handle(&headers, tokens[0].as_bytes()));
    group.bench_function("duplicate", |b| {
        b.iter(|| rt.block_on(webhooks.handle(&headers, tokens[0].as_bytes())))
    });
    group.finish();

    let key = rt
        .block_on(webhooks.jwks().key(issuer.signer().kid()))
        .expect("the cached key");
    let token = &tokens[0];
    let (message, signature) = token.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    assert!(key.verify_rs256(message.as_bytes(), &signature));
    c.bench_function("rs256_verify", |b| {
        b.iter(|| key.verify_rs256(message.as_bytes(), &signature))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
