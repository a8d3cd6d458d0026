//! Memory of the in-memory store: inserts 1 000 000 completed event ids (Kinde-shaped, 38 bytes)
//! and reports the resident memory they cost, per entry.
//!
//! Run: `cargo bench -p kinde-core --bench store_memory`. Reads `/proc/self/statm` (Linux).

use std::time::Duration;

use kinde_core::store::{
    Claim, ClaimRequest, Completion, IdempotencyStore, MemoryStore, MemoryStoreConfig,
};
use kinde_core::EventId;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    const N: usize = 1_000_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ids: Vec<EventId> = (0..N)
        .map(|i| EventId::new(format!("event_{i:032x}")).unwrap())
        .collect();
    let before = rss_bytes();
    let store = MemoryStore::new(MemoryStoreConfig::default().capacity(N));
    let ttl = Duration::from_secs(3600);
    rt.block_on(async {
        for id in &ids {
            let claimed = store.claim(&ClaimRequest::new(id, ttl, ttl)).await.unwrap();
            let Claim::StartProcessing { token, .. } = claimed else {
                panic!("fresh id not claimable");
            };
            store
                .complete(id, &token, &Completion::new(ttl))
                .await
                .unwrap();
        }
    });
    let after = rss_bytes();
    assert_eq!(store.len(), N);
    let per_entry = (after - before) as f64 / N as f64;
    println!(
        "memory store: {N} completed entries, RSS +{:.1} MiB, {per_entry:.0} bytes/entry (id length {})",
        (after - before) as f64 / (1024.0 * 1024.0),
        ids[0].len()
    );
    drop(store);
}
