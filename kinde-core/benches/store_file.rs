//! The durable store's costs on this machine's disk: the fsync it waits for, a completion's
//! latency (without and with an entity, as with ordering on), a release's, claims and
//! deliveries per second (one at a time and 64 concurrent), the file's size per entry, and how
//! long opening takes: after a clean close, and after a crash (a child process fills a file
//! and aborts; opening it then repairs it).
//!
//! Run: `cargo bench -p kinde-core --features durable --bench store_file`. Writes a temporary
//! file under the system temp dir (`TMPDIR`); set it to the disk you mean to measure.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinde_core::store::{
    Claim, ClaimRequest, ClaimToken, Completion, Entity, FileStore, FileStoreConfig,
    IdempotencyStore,
};
use kinde_core::EventId;

const TTL: Duration = Duration::from_secs(3600);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms (n = {})",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.len()
    );
}

fn eid(id: &str) -> EventId {
    EventId::new(id).unwrap()
}

/// Claims `id`, on `entity` (with a timestamp) when given.
async fn claim_on(s: &FileStore, id: &str, entity: Option<Entity<'_>>) -> ClaimToken {
    let event = eid(id);
    let request = ClaimRequest::new(&event, TTL, TTL).entity(entity);
    match s.claim(&request).await.unwrap() {
        Claim::StartProcessing { token, .. } => token,
        other => panic!("{id}: {other:?}"),
    }
}

async fn claim(s: &FileStore, id: &str) -> ClaimToken {
    claim_on(s, id, None).await
}

async fn complete(s: &FileStore, id: &str, token: &ClaimToken) {
    s.complete(&eid(id), token, &Completion::new(TTL))
        .await
        .unwrap();
}

/// Fills `store` with `target` handled entries, 64 deliveries at a time.
fn fill(rt: &tokio::runtime::Runtime, store: &Arc<FileStore>, target: usize) {
    let have = store.len().unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in (have + w..target).step_by(64) {
                    let id = format!("fill_{i:032x}");
                    let token = claim(&store, &id).await;
                    complete(&store, &id, &token).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

const CHILD: &str = "KINDE_STORE_FILE_BENCH_CHILD";
const ENTRIES: usize = 200_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(path) = std::env::var(CHILD) {
        // The crashing child: fill, then die without closing anything.
        let store =
            Arc::new(FileStore::new(FileStoreConfig::new(path).capacity(10_000_000)).unwrap());
        fill(&rt, &store, ENTRIES);
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    // The disk: 4 KiB written and fdatasync'ed, as a baseline for everything below.
    let mut f = std::fs::File::create(dir.path().join("fsync-probe")).unwrap();
    let samples = (0..200)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&[7u8; 4096]).unwrap();
            f.sync_data().unwrap();
            t.elapsed()
        })
        .collect();
    report("fdatasync of 4 KiB (the disk)", samples);

    let path = dir.path().join("bench.redb");
    let store = Arc::new(FileStore::new(FileStoreConfig::new(&path).capacity(10_000_000)).unwrap());
    rt.block_on(async {
        // One delivery at a time: a claim (no fsync) and a completion (fsync) each.
        let (mut claims, mut completes) = (Vec::new(), Vec::new());
        for i in 0..500 {
            let id = format!("seq_{i:032x}");
            let t = Instant::now();
            let token = claim(&store, &id).await;
            claims.push(t.elapsed());
            let t = Instant::now();
            complete(&store, &id, &token).await;
            completes.push(t.elapsed());
        }
        report("claim, one at a time (not fsynced)", claims);
        report("complete, one at a time (fsynced)", completes);

        // With ordering: the claim and the completion also read and write the entity's record
        // (100 entities, so most completions update an existing one).
        let (mut claims, mut completes) = (Vec::new(), Vec::new());
        for i in 0..500i64 {
            let id = format!("ord_{i:032x}");
            let key = format!("user:kp_{}", i % 100);
            let entity = Some(Entity {
                key: &key,
                timestamp: i,
            });
            let t = Instant::now();
            let token = claim_on(&store, &id, entity).await;
            claims.push(t.elapsed());
            let t = Instant::now();
            let done = Completion::new(TTL).entity(entity, false);
            store.complete(&eid(&id), &token, &done).await.unwrap();
            completes.push(t.elapsed());
        }
        report("claim with an entity, one at a time (not fsynced)", claims);
        report(
            "complete with an entity, one at a time (fsynced)",
            completes,
        );

        // A release (a failed attempt with parking off): not fsynced. (A counted failure, with
        // parking on, costs a completion's fsync.)
        let mut fails = Vec::new();
        for i in 0..200 {
            let id = format!("fail_{i:032x}");
            let token = claim(&store, &id).await;
            let t = Instant::now();
            let released = store.release(&eid(&id), &token, None).await.unwrap();
            fails.push(t.elapsed());
            assert_eq!(released, kinde_core::store::Fenced::Applied);
        }
        report("release, one at a time (not fsynced)", fails);

        // Claims only, one at a time.
        let n = 5_000;
        let t = Instant::now();
        for i in 0..n {
            claim(&store, &format!("claim_{i:032x}")).await;
        }
        println!(
            "claims alone, one at a time: {:.0} claims/s",
            n as f64 / t.elapsed().as_secs_f64()
        );

        // 64 concurrent deliveries (claim + complete), as under a burst: group commit shares
        // the fsyncs.
        for (label, n) in [("64 concurrent deliveries", 20_000usize)] {
            let t = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..64 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    for i in (w..n).step_by(64) {
                        let id = format!("conc_{i:032x}");
                        let started = Instant::now();
                        let token = claim(&store, &id).await;
                        complete(&store, &id, &token).await;
                        lat.push(started.elapsed());
                    }
                    lat
                }));
            }
            let mut lat = Vec::new();
            for task in tasks {
                lat.extend(task.await.unwrap());
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{label}: {:.0} deliveries/s (each a claim and an fsynced completion)",
                n as f64 / secs
            );
            report(&format!("{label}, claim + complete latency"), lat);
        }
    });

    // Fill, then look at the file and time a reopen.
    fill(&rt, &store, ENTRIES);
    let entries = store.len().unwrap();
    let t = Instant::now();
    drop(Arc::into_inner(store).expect("one handle"));
    let closed = t.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "{entries} entries (38-byte ids): file {:.1} MiB, {:.0} bytes/entry; drop (close) took {:.1} ms",
        size as f64 / (1024.0 * 1024.0),
        size as f64 / entries as f64,
        closed.as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let store = FileStore::open(&path).unwrap();
    println!(
        "reopen after a clean close: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(store);

    let crashed = dir.path().join("crashed.redb");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, &crashed)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child crashes");
    let t = Instant::now();
    let store = FileStore::open(&crashed).unwrap();
    println!(
        "reopen after a crash with {} entries (repair): {:.1} ms",
        store.len().unwrap(),
        t.elapsed().as_secs_f64() * 1e3
    );
}
