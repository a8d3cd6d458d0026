//! Heap allocations per delivery, counted by DHAT's global allocator (the `dhat` crate): `Webhooks::handle` of a new
//! `user.created` (verify, typed parse, replay window, in-memory dedupe, dispatch, settle) and
//! of a duplicate, on a warm key cache; without a tracing subscriber, then with the receivers'
//! one (an INFO `fmt` subscriber, here writing to `io::sink`), so the span's share shows.
//!
//! Run: `cargo bench -p kinde-core --bench allocations` (add `--features metrics` to count the
//! metrics' share, without a recorder installed). Prints counts, times nothing.

use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::verify::StaticKeySource;
use kinde_core::Webhooks;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: usize = 2_000;

/// Allocations and bytes allocated by `f`, per delivery.
fn counted<F: FnMut()>(mut f: F) -> (f64, f64) {
    let before = dhat::HeapStats::get();
    f();
    let after = dhat::HeapStats::get();
    let n = N as f64;
    (
        (after.total_blocks - before.total_blocks) as f64 / n,
        (after.total_bytes - before.total_bytes) as f64 / n,
    )
}

fn run(label: &str, rt: &tokio::runtime::Runtime, issuer: &TestIssuer) {
    let tokens: Vec<String> = (0..N)
        .map(|_| issuer.sign(&TestEvent::sample("user.created").into_claims()))
        .collect();
    let webhooks = Webhooks::builder()
        .key_source(StaticKeySource::new(issuer.jwks().to_string()))
        .on(|e: Event<UserCreated>| async move {
            std::hint::black_box(e.data.user.id.len());
        })
        .build()
        .expect("receiver");
    let headers = http::HeaderMap::new();
    rt.block_on(webhooks.jwks().refresh()).expect("keys");
    if std::env::var_os("KINDE_FUTURE_SIZES").is_some() {
        let handle = webhooks.handle(&headers, tokens[0].as_bytes());
        let verify = webhooks.verify(tokens[0].as_bytes());
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::new())]);
        let receive = kinde_core::adapter::receive(&webhooks, &http::Method::POST, &headers, body);
        eprintln!(
            "future sizes: handle {} B, verify {} B, adapter::receive {} B",
            std::mem::size_of_val(&handle),
            std::mem::size_of_val(&verify),
            std::mem::size_of_val(&receive)
        );
    }
    // Warm-up: the store's shards and the runtime's first allocations.
    let _ = rt.block_on(webhooks.handle(&headers, tokens[0].as_bytes()));
    let (new_allocs, new_bytes) = counted(|| {
        rt.block_on(async {
            for t in &tokens[1..] {
                let r = webhooks.handle(&headers, t.as_bytes()).await;
                assert!(r.outcome().is_handled(), "{:?}", r.outcome());
            }
            // One more, so that N deliveries are counted.
            let _ = webhooks.handle(&headers, tokens[0].as_bytes()).await;
        })
    });
    let (dup_allocs, dup_bytes) = counted(|| {
        rt.block_on(async {
            for t in &tokens {
                let _ = webhooks.handle(&headers, t.as_bytes()).await;
            }
        })
    });
    println!(
        "{label}: new event {new_allocs:.1} allocations ({new_bytes:.0} bytes) per delivery; \
         duplicate {dup_allocs:.1} ({dup_bytes:.0} bytes)"
    );
}

fn main() {
    // With KINDE_DHAT_JSON=FILE the allocation sites are saved there (DHAT's format: view it
    // with DHAT's viewer, or `python3 bench/dhat_top.py FILE`).
    let _profiler = match std::env::var_os("KINDE_DHAT_JSON") {
        Some(file) => dhat::Profiler::builder()
            .file_name(file)
            .trim_backtraces(Some(48))
            .build(),
        None => dhat::Profiler::builder().testing().build(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = TestIssuer::new();
    println!(
        "crypto backend: {}; metrics feature: {}",
        kinde_core::crypto_backend(),
        cfg!(feature = "metrics")
    );
    run("no subscriber", &rt, &issuer);
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || run("INFO fmt subscriber", &rt, &issuer));
}
