//! Other processes: a real crash (a child killed with SIGKILL) and a second process opening
//! the file. The child is this test binary again, running `child_process` (ignored in a
//! normal run) with instructions in its environment.
//!
//! The crash shows what is fsynced before an operation returns: completions (with the entity
//! they apply to), failure counts and parked events.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use std::sync::Arc;

use kinde_core::event::Event;
use kinde_core::store::{
    Applied, Claim, ClaimRequest, Completion, Entity, FileStore, FileStoreError, IdempotencyStore,
};
use kinde_core::testing::{ManualClock, TestEvent, TestIssuer};
use kinde_core::{EventId, Webhooks};

use super::{claim, dir, eid, handle, open, started, t0, HOUR, MINUTE};

/// The entity the crashing child applies a deletion to (timestamp 200).
const ENTITY: &str = "user:kp_crash";
/// Parked by the child on its first failure.
const PARKED: &str = "event_crash_parked";
/// Failed once by the child (parking after 3): its count survives.
const FLAKY: &str = "event_crash_flaky";

/// A claim (with `ttl`) and a completion of `id` applied to [`ENTITY`] at `timestamp`.
async fn claim_entity(s: &dyn IdempotencyStore, id: &str, timestamp: i64) -> Claim {
    let entity = Some(Entity {
        key: ENTITY,
        timestamp,
    });
    let id = eid(id);
    let request = ClaimRequest::new(&id, MINUTE, HOUR).entity(entity);
    s.claim(&request).await.unwrap()
}

/// A receiver on `store` whose every handler fails, parking after `park_after` failures.
fn failing_receiver(store: Arc<FileStore>, jwks_url: String, park_after: u32) -> Webhooks {
    Webhooks::builder()
        .issuer(jwks_url)
        .store(store)
        .park_after(park_after)
        .fallback(|_: Event| std::future::ready(Err::<(), _>("poison")))
        .build()
        .unwrap()
}

/// A signed event with this id (every [`TestIssuer::new`] signs with the same key).
fn token(issuer: &TestIssuer, id: &str) -> String {
    let event = TestEvent::raw("billing.poison", serde_json::json!({"n": 1})).event_id(id);
    issuer.sign(&event.into_claims())
}

async fn send(webhooks: &Webhooks, token: &str) -> (u16, &'static str) {
    let resp = webhooks
        .handle(&http::HeaderMap::new(), token.as_bytes())
        .await;
    (resp.status().as_u16(), resp.outcome().code())
}

/// The child's instructions: `<mode> <path>`.
const CHILD_ENV: &str = "KINDE_FILE_STORE_CHILD";
const READY: &str = "KINDE-CHILD-READY";

/// Runs this test binary's `child_process` with `mode` on `path`; returns once it said ready.
fn spawn_child(mode: &str, path: &Path) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "processes::child_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, format!("{mode} {}", path.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(READY) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!("the child ended, or did not get ready within 60 s");
    }
    child
}

/// SIGKILL, then reap.
fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Not a test: the other process of the tests below (runs only with their instructions).
#[test]
#[ignore = "run by the crash and second-process tests"]
fn child_process() {
    let Ok(instructions) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, path) = instructions.split_once(' ').unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clock = ManualClock::new(t0());
    let s = Arc::new(open(Path::new(path), &clock));
    rt.block_on(async {
        if mode == "crash" {
            started(claim(&*s, "busy", Duration::from_secs(30)).await.unwrap());
            for i in 0..50 {
                handle(&*s, &format!("done-{i}"), HOUR).await;
            }
            // A deletion applied to an entity: a tombstone at 200.
            let t = started(claim_entity(&*s, "applied", 200).await);
            let entity = Some(Entity {
                key: ENTITY,
                timestamp: 200,
            });
            let done = Completion::new(HOUR).entity(entity, true);
            s.complete(&eid("applied"), &t, &done).await.unwrap();
            // A failure counted, and an event parked, through a receiver.
            let issuer = TestIssuer::new();
            let jwks = issuer.serve().await;
            let flaky = failing_receiver(s.clone(), jwks.url(), 3);
            assert_eq!(
                send(&flaky, &token(&issuer, FLAKY)).await,
                (500, "handler_failed")
            );
            let parking = failing_receiver(s.clone(), jwks.url(), 1);
            assert_eq!(
                send(&parking, &token(&issuer, PARKED)).await,
                (200, "parked")
            );
            // After the last fsync: may or may not reach the disk before the kill.
            started(claim(&*s, "late", Duration::from_secs(30)).await.unwrap());
        }
    });
    println!("{READY}");
    // Held open until killed (bounded, should the parent die first).
    std::thread::sleep(Duration::from_secs(120));
    panic!("the child was not killed within 120 s");
}

#[tokio::test]
async fn after_a_crash_completions_entities_failures_and_parked_events_are_kept_and_the_left_claim_expires(
) {
    let d = dir();
    let path = d.path().join("s.redb");
    kill(spawn_child("crash", &path));
    // The child's clock said t0; 20 s later the claim has 10 s left.
    let clock = ManualClock::new(t0() + Duration::from_secs(20));
    let s = Arc::new(open(&path, &clock));
    for i in 0..50 {
        assert_eq!(
            claim(&*s, &format!("done-{i}"), MINUTE).await.unwrap(),
            Claim::AlreadyHandled,
            "done-{i}"
        );
    }
    assert_eq!(claim(&*s, "busy", MINUTE).await.unwrap(), Claim::InProgress);
    // A claim taken after the last fsync is either on disk (in progress) or was lost (new).
    let late = claim(&*s, "late", MINUTE).await.unwrap();
    assert!(
        matches!(late, Claim::InProgress | Claim::StartProcessing { .. }),
        "{late:?}"
    );
    // The entity's tombstone: older events are superseded, a newer one sees it.
    assert_eq!(claim_entity(&*s, "older", 100).await, Claim::Superseded);
    match claim_entity(&*s, "newer", 300).await {
        Claim::StartProcessing { token, previous } => {
            assert_eq!(
                previous,
                Some(Applied {
                    timestamp: 200,
                    deleted: true
                })
            );
            s.release(&eid("newer"), &token, Some(ENTITY))
                .await
                .unwrap();
        }
        other => panic!("newer: {other:?}"),
    }
    // The parked event, and the failure count (its second failure parks it, with 2 attempts).
    let parked = EventId::new(PARKED).unwrap();
    assert_eq!(claim(&*s, PARKED, MINUTE).await.unwrap(), Claim::Parked);
    let record = s
        .parked_event(&parked)
        .await
        .unwrap()
        .expect("still parked");
    assert_eq!(
        (record.attempts, record.event_type.as_str()),
        (1, "billing.poison")
    );
    assert!(
        record.last_error.contains("poison"),
        "{}",
        record.last_error
    );
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let webhooks = failing_receiver(s.clone(), jwks.url(), 2);
    assert_eq!(
        send(&webhooks, &token(&issuer, FLAKY)).await,
        (200, "parked")
    );
    let attempts: Vec<_> = s
        .parked()
        .await
        .unwrap()
        .iter()
        .map(|p| (p.event_id.to_string(), p.attempts))
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts.contains(&(FLAKY.to_owned(), 2)), "{attempts:?}");
    drop(webhooks);
    drop(Arc::into_inner(s).expect("the only handle"));
    clock.advance(Duration::from_secs(11));
    let s = open(&path, &clock);
    started(claim(&s, "busy", MINUTE).await.unwrap());
    assert_eq!(
        claim(&s, "done-0", MINUTE).await.unwrap(),
        Claim::AlreadyHandled
    );
}

#[tokio::test]
async fn a_second_process_is_refused_while_the_first_holds_the_file_not_after_it_dies() {
    let d = dir();
    let path = d.path().join("s.redb");
    let holder = spawn_child("hold", &path);
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, FileStoreError::Locked { .. }), "{err:?}");
    // The lock dies with its process, however it ends.
    kill(holder);
    let s = FileStore::open(&path).unwrap();
    started(claim(&s, "e1", MINUTE).await.unwrap());
}
