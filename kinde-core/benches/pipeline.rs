//! The core path against its physical limit.
//!
//! - `handle/new_event`: verify + parse + replay window + dedupe (in-memory) + dispatch of one
//!   new `user.created`, on a warm JWKS cache;
//! - `handle/duplicate`: the same for an event already handled;
//! - `rs256_verify`: one bare RS256 signature check of the same token with the same key, already
//!   parsed, through the same crypto backend (the key the receiver's cache holds): the
//!   primitive no receiver can beat.
//!
//! Run: `cargo bench -p kinde-core --bench pipeline`.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::verify::StaticKeySource;
use kinde_core::Webhooks;

const POOL: usize = 2_000;

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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = TestIssuer::new();
    let tokens: Vec<String> = (0..POOL)
        .map(|_| issuer.sign(&TestEvent::sample("user.created").into_claims()))
        .collect();
    let headers = http::HeaderMap::new();
    eprintln!("crypto backend: {}", kinde_core::crypto_backend());

    let mut group = c.benchmark_group("handle");
    group.bench_function("new_event", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    // A fresh receiver (fresh store) per pass over the pool, warmed outside the
                    // timed region, so every timed delivery is a new event.
                    let webhooks = receiver(&issuer);
                    webhooks.jwks().refresh().await.unwrap();
                    let n = (iters - done).min(POOL as u64) as usize;
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
        })
    });
    let webhooks = receiver(&issuer);
    let _ = rt.block_on(webhooks.handle(&headers, tokens[0].as_bytes())); // claimed: the rest are duplicates
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
