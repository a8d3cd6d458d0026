//! Other processes: a real crash (a child killed with SIGKILL) and a second process opening
//! the file. The child is this test binary again, running `child_process` (ignored in a
//! normal run) with instructions in its environment.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kinde_core::store::{Claim, FileStore, FileStoreError, IdempotencyStore};
use kinde_core::testing::ManualClock;

use super::{dir, handle, open, started, t0, HOUR, MINUTE};

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
        panic!("the child did not get ready within 60 s");
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
        .build()
        .unwrap();
    let clock = ManualClock::new(t0());
    let s = open(Path::new(path), &clock);
    rt.block_on(async {
        if mode == "crash" {
            started(s.claim("busy", Duration::from_secs(30)).await.unwrap());
            for i in 0..50 {
                handle(&s, &format!("done-{i}"), HOUR).await;
            }
            // After the last fsync: may or may not reach the disk before the kill.
            started(s.claim("late", Duration::from_secs(30)).await.unwrap());
        }
    });
    println!("{READY}");
    // Held open until killed (bounded, should the parent die first).
    std::thread::sleep(Duration::from_secs(120));
    panic!("the child was not killed within 120 s");
}

#[tokio::test]
async fn after_a_crash_completions_are_kept_and_the_left_claim_expires_after_its_ttl() {
    let d = dir();
    let path = d.path().join("s.redb");
    kill(spawn_child("crash", &path));
    // The child's clock said t0; 20 s later the claim has 10 s left.
    let clock = ManualClock::new(t0() + Duration::from_secs(20));
    let s = open(&path, &clock);
    for i in 0..50 {
        assert_eq!(
            s.claim(&format!("done-{i}"), MINUTE).await.unwrap(),
            Claim::AlreadyHandled,
            "done-{i}"
        );
    }
    assert_eq!(s.claim("busy", MINUTE).await.unwrap(), Claim::InProgress);
    // A claim taken after the last fsync is either on disk (in progress) or was lost (new).
    let late = s.claim("late", MINUTE).await.unwrap();
    assert!(
        matches!(late, Claim::InProgress | Claim::StartProcessing(_)),
        "{late:?}"
    );
    drop(s);
    clock.advance(Duration::from_secs(11));
    let s = open(&path, &clock);
    started(s.claim("busy", MINUTE).await.unwrap());
    assert_eq!(
        s.claim("done-0", MINUTE).await.unwrap(),
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
    started(s.claim("e1", MINUTE).await.unwrap());
}
