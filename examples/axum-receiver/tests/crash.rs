//! `KINDE_STORE_PATH` against the real binary: a receiver killed with SIGKILL while deliveries
//! are in flight, restarted on the same store file, keeps "never twice" and loses nothing; a
//! second receiver on the same file and a store path together with `REDIS_URL` are start-up
//! errors.
//!
//! Between the kill and the restart, the test opens the store file itself: once with the
//! system clock, to see which events the crash left claimed, then with a clock set past the
//! receiver's processing TTL, which purges those claims as expired (what the wall clock does
//! after 2 minutes), so the restarted receiver runs them at once instead of answering 409 until
//! then.

#[path = "../../receiver-app/contract/mod.rs"]
mod contract;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::Receiver;
use kinde_core::store::{Claim, ClaimRequest, FileStore, FileStoreConfig, IdempotencyStore};
use kinde_core::testing::{ManualClock, TestEvent, TestIssuer};
use kinde_core::{Clock as _, EventId, SystemClock};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_axum-receiver");
/// Events delivered; the receiver is killed once half of them are answered.
const EVENTS: usize = 400;
/// Deliveries in flight at once before the kill.
const CONCURRENCY: usize = 64;
/// The receiver's processing TTL (the library default): how long a claim left by the crash
/// holds on the wall clock.
const PROCESSING_TTL: Duration = Duration::from_secs(120);

/// One event: its id and signed token.
struct Delivery {
    id: String,
    token: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Posts `token`; `Some((status, body))` if an answer came.
async fn post(client: &reqwest::Client, url: &str, token: &str) -> Option<(u16, String)> {
    let resp = client
        .post(url)
        .header("content-type", "application/jwt")
        .body(token.to_owned())
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// `handled <type> <id>` lines per event id; any other line fails the test.
fn count_lines(lines: &[String], known: &HashMap<String, usize>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        let mut parts = line.split(' ');
        let (Some("handled"), Some(_ty), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("unexpected stdout line {line:?}");
        };
        assert!(
            known.contains_key(id),
            "a line for an unknown event: {line:?}"
        );
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Rounds of kill-and-restart at most: every round checks every invariant; whether a round's
/// kill lands while a delivery is mid-way (its line written but its completion not on disk, a
/// completion on disk but its 200 unsent, or a claim recorded) is up to the scheduler, so the
/// test needs one round of [`ROUNDS`] that did.
const ROUNDS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_mid_delivery_and_restarted_on_its_store_file_runs_each_event_once_more_at_most(
) {
    for round in 1..=ROUNDS {
        let caught = crash_round(round).await;
        if caught > 0 {
            return;
        }
    }
    panic!("no delivery was in flight at the kill in {ROUNDS} rounds");
}

/// One round on a fresh store file: deliveries, SIGKILL, restart, replay of everything, every
/// invariant asserted. Returns how many deliveries the kill caught mid-way.
async fn crash_round(round: usize) -> usize {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("kinde.redb");
    let envs = [
        ("KINDE_DOMAIN", jwks.url()),
        ("KINDE_STORE_PATH", store.display().to_string()),
    ];
    // Every token is signed before anything is timed.
    let types = [
        "user.created",
        "user.updated",
        "organization.created",
        "role.created",
    ];
    let deliveries: Arc<Vec<Delivery>> = Arc::new(
        (0..EVENTS)
            .map(|i| {
                let ev = TestEvent::sample(types[i % types.len()]);
                let id = ev.id().to_owned();
                Delivery {
                    id,
                    token: issuer.sign(&ev.into_claims()),
                }
            })
            .collect(),
    );
    let index: HashMap<String, usize> = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();

    // Run 1: many concurrent deliveries, SIGKILL once half are answered.
    let first = Receiver::start(BIN, &envs).await;
    let url = format!("http://{}/kinde/webhook", first.addr);
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (deliveries, next, answered, killed, url) = (
                deliveries.clone(),
                next.clone(),
                answered.clone(),
                killed.clone(),
                url.clone(),
            );
            tokio::spawn(async move {
                let client = client();
                let mut got = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= EVENTS || killed.load(Ordering::SeqCst) {
                        return got;
                    }
                    if let Some(answer) = post(&client, &url, &deliveries[i].token).await {
                        answered.fetch_add(1, Ordering::SeqCst);
                        got.push((i, answer));
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.load(Ordering::SeqCst) < EVENTS / 2 {
        assert!(
            Instant::now() < deadline,
            "half the deliveries not answered in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let lines_1 = first.stop().await; // SIGKILL, then the stdout lines it wrote
    killed.store(true, Ordering::SeqCst);
    let mut ok_1 = vec![false; EVENTS];
    for w in workers {
        for (i, (status, body)) in tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("run-1 deliveries end")
            .unwrap()
        {
            assert_eq!(
                (status, body.as_str()),
                (200, r#"{"status":"handled"}"#),
                "run 1, event {i}"
            );
            ok_1[i] = true;
        }
    }
    let counts_1 = count_lines(&lines_1, &index);

    // Between the runs: which events did the crash leave claimed? Then let the wall clock run
    // past the processing TTL for the store file, so those claims expire and are purged.
    let left = tokio::task::spawn_blocking({
        let (store, deliveries) = (store.clone(), deliveries.clone());
        move || expire_left_claims(&store, &deliveries)
    })
    .await
    .unwrap();
    let left_claims = left.iter().filter(|l| **l).count();

    // Run 2 on the same file: replay every delivery; nothing is in progress any more.
    let second = Receiver::start(BIN, &envs).await;
    let url = format!("http://{}/kinde/webhook", second.addr);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let replayers: Vec<_> = (0..16)
        .map(|_| {
            let (deliveries, next, url) = (deliveries.clone(), next.clone(), url.clone());
            tokio::spawn(async move {
                let client = client();
                let mut got = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= EVENTS {
                        return got;
                    }
                    match post(&client, &url, &deliveries[i].token).await {
                        Some((200, body)) => got.push((i, body)),
                        other => panic!("replay of event {i}: {other:?}"),
                    }
                }
            })
        })
        .collect();
    let mut replay = vec![String::new(); EVENTS];
    for r in replayers {
        for (i, body) in r.await.unwrap() {
            replay[i] = body;
        }
    }
    let replay_took = started.elapsed();
    // Each handled line is flushed before its 200: all are in the pipe by now.
    let lines_2 = second.stop().await;
    let counts_2 = count_lines(&lines_2, &index);

    let (mut answered_then_dup, mut lost_200_dup, mut rerun, mut rerun_twice) = (0, 0, 0, 0);
    for (i, d) in deliveries.iter().enumerate() {
        let l1 = counts_1.get(&d.id).copied().unwrap_or(0);
        let l2 = counts_2.get(&d.id).copied().unwrap_or(0);
        let what = format!(
            "event {i}: 200 before the kill {}, claim left {}, lines {l1} + {l2}, replay {}",
            ok_1[i], left[i], replay[i]
        );
        assert!(l1 <= 1 && l2 <= 1, "{what}");
        // A claim left by the crash is an event that was neither answered nor completed.
        assert!(
            !left[i] || (!ok_1[i] && replay[i] == r#"{"status":"handled"}"#),
            "{what}"
        );
        if ok_1[i] {
            // Answered 200: recorded on disk first, so a duplicate now, and nothing ran again.
            assert_eq!(
                (l1, l2, replay[i].as_str()),
                (1, 0, r#"{"status":"duplicate"}"#),
                "{what}"
            );
            answered_then_dup += 1;
        } else if replay[i] == r#"{"status":"duplicate"}"# {
            // The completion reached the disk but the 200 was lost in the kill: it ran once.
            assert_eq!((l1, l2), (1, 0), "{what}");
            lost_200_dup += 1;
        } else {
            // Not recorded as handled: handled exactly once more now.
            assert_eq!(
                (replay[i].as_str(), l2),
                (r#"{"status":"handled"}"#, 1),
                "{what}"
            );
            rerun += 1;
            rerun_twice += l1;
        }
    }
    eprintln!(
        "crash round {round}: {EVENTS} events; answered 200 before the kill: {answered_then_dup} (all duplicates \
         after); no 200 but completed on disk: {lost_200_dup}; handled again: {rerun} (of which \
         {rerun_twice} had run before the kill, uncompleted); claims left by the crash (purged \
         as expired): {left_claims}; replay took {replay_took:?}"
    );
    assert!(answered_then_dup >= EVENTS / 2);
    // Deliveries the kill caught mid-way: a handler had run, or a claim was taken, without a 200.
    lost_200_dup + rerun_twice + left_claims
}

/// Opens the store file the killed receiver left (blocking: call it off the runtime's
/// workers). First with the system clock: which deliveries' events are still claimed (each
/// claim that starts instead is released again)? Then with a clock past the processing TTL:
/// opening purges every expired claim, and those events can be claimed again. Returns which
/// events the crash had left claimed.
fn expire_left_claims(path: &std::path::Path, deliveries: &[Delivery]) -> Vec<bool> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ids: Vec<EventId> = deliveries
        .iter()
        .map(|d| EventId::new(&d.id).unwrap())
        .collect();
    // Claims once, releasing a claim that starts: whether the event is in progress.
    let in_progress = |store: &FileStore, id: &EventId| {
        let request = ClaimRequest::new(id, Duration::from_secs(60), Duration::from_secs(60));
        match rt.block_on(store.claim(&request)).unwrap() {
            Claim::InProgress => true,
            Claim::AlreadyHandled => false,
            Claim::StartProcessing { token, .. } => {
                rt.block_on(store.release(id, &token, None)).unwrap();
                false
            }
            other => panic!("{id}: {other:?}"),
        }
    };
    let store = FileStore::open(path).expect("the killed receiver's store file opens");
    let left: Vec<bool> = ids.iter().map(|id| in_progress(&store, id)).collect();
    drop(store);
    // 1 s past the last claim's deadline.
    let later = ManualClock::new(SystemClock.now() + PROCESSING_TTL + Duration::from_secs(1));
    let store = FileStore::new(FileStoreConfig::new(path).clock(later)).unwrap();
    for (id, _) in ids.iter().zip(&left).filter(|(_, left)| **left) {
        assert!(
            !in_progress(&store, id),
            "{id}: its claim is still there past the TTL"
        );
    }
    left
}

#[tokio::test]
async fn a_second_receiver_on_the_same_store_file_exits_naming_kinde_store_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("kinde.redb").display().to_string();
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let first = Receiver::start(
        BIN,
        &[
            ("KINDE_DOMAIN", jwks.url()),
            ("KINDE_STORE_PATH", store.clone()),
        ],
    )
    .await;
    let out = run_to_exit(&[
        ("KINDE_DOMAIN", "acme.kinde.com"),
        ("BIND", "127.0.0.1:0"),
        ("KINDE_STORE_PATH", &store),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = one_stderr_line(&out);
    assert!(
        stderr.contains("KINDE_STORE_PATH") && stderr.contains("already open"),
        "{stderr}"
    );
    // The first receiver is unharmed.
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    assert_eq!(first.post("/kinde/webhook", &token).await, 200);
    first.stop().await;
}

#[tokio::test]
async fn kinde_store_path_with_redis_url_exits_2_naming_both() {
    let out = run_to_exit(&[
        ("KINDE_DOMAIN", "acme.kinde.com"),
        ("KINDE_STORE_PATH", "/tmp/never-created.redb"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = one_stderr_line(&out);
    assert!(
        stderr.contains("KINDE_STORE_PATH") && stderr.contains("REDIS_URL"),
        "{stderr}"
    );
    assert!(!std::path::Path::new("/tmp/never-created.redb").exists());
}

async fn run_to_exit(envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().stdin(Stdio::null()).kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("the receiver exits within 30 s")
        .unwrap();
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    out
}

fn one_stderr_line(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr:?}");
    lines[0].to_owned()
}
