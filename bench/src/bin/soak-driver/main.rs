//! The soak driver behind `bench/soak.sh` (not part of `cargo test`).
//!
//! Sends a bounded, mixed stream to a running receiver for `SOAK_SECS`: valid unique events,
//! duplicates of earlier ones, forged tokens and oversized bodies, with `CONCURRENCY` workers.
//! Halfway it runs `SOAK_STOP_CMD`, waits `SOAK_DOWN_SECS`, then `SOAK_START_CMD` (a Redis
//! restart); either command failing fails the soak. A valid delivery answered 5xx/409 (or not
//! answered: a transport error, a request past `SOAK_REQUEST_TIMEOUT_SECS`) is retried like
//! Kinde would (after a pause) until it gets 200, up to `SOAK_DRAIN_SECS` after the stream ends.
//! The drain defaults to 150 s: longer than the receiver's 120 s processing TTL, so a claim left
//! in progress by the restart expires and the event's retry is handled within it.
//!
//! At the end it compares the distinct valid events it sent (`delivered`) with the distinct ids
//! in the receiver's stdout (`HANDLED_FILE`, one `handled <type> <id>` line per handler call):
//! `lost = delivered − handled`, `doubled` = lines beyond one per id. It samples the receiver's
//! RSS (`RECEIVER_PID`) at start and end and counts 5xx answers outside the restart window.
//! Prints a report; exits non-zero if an event was lost or doubled, a line names an event never
//! sent, a worker panicked or outlived the drain, the restart failed, a 5xx came outside the
//! window, a status was wrong, or RSS grew by more than `SOAK_RSS_GROWTH_MIB` (default 16).

mod report;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinde_core::testing::{TestEvent, TestIssuer, TestKey};

/// The receivers' processing TTL (kinde-core's default): how long a claim whose settling was cut
/// short by the restart blocks its event's retries (409) before a retry can take over.
const PROCESSING_TTL_SECS: u64 = 120;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    duplicates: AtomicU64,
    forged: AtomicU64,
    oversized: AtomicU64,
    retries: AtomicU64,
    five_xx_in_window: AtomicU64,
    five_xx_outside: AtomicU64,
    wrong_status: AtomicU64,
    transport_errors: AtomicU64,
}

struct Shared {
    url: String,
    client: reqwest::Client,
    /// Oversized bodies go on their own connections: the receiver answers 413 without reading
    /// them and closes the connection, which must not break a pooled one.
    oneshot: reqwest::Client,
    issuer: TestIssuer,
    stats: Stats,
    /// Every distinct valid event sent, whatever its answer.
    delivered: Mutex<HashSet<String>>,
    /// Valid events answered 200 (tokens kept to send duplicates).
    accepted: Mutex<Vec<String>>,
    /// Valid events never answered 200: still unanswered at the drain deadline, or refused.
    unanswered: Mutex<Vec<String>>,
    restart_window: AtomicBool,
}

impl Shared {
    async fn post(&self, body: String) -> u16 {
        self.post_with(&self.client, body).await
    }

    async fn post_with(&self, client: &reqwest::Client, body: String) -> u16 {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        match client
            .post(&self.url)
            .header("content-type", "application/jwt")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => {
                self.stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                599
            }
        }
    }

    fn note_5xx(&self, status: u16) {
        if status == 599 {
            return; // a transport error, not an answer: counted apart
        }
        if status >= 500 || status == 409 {
            if self.restart_window.load(Ordering::SeqCst) {
                self.stats.five_xx_in_window.fetch_add(1, Ordering::Relaxed);
            } else if status >= 500 {
                self.stats.five_xx_outside.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Delivers a new valid event until it gets 200, like Kinde's retries (pauses, bounded by
    /// `deadline`). One that never gets it is recorded as unanswered.
    async fn deliver(&self, id: String, token: String, deadline: Instant) {
        lock(&self.delivered).insert(id.clone());
        let mut attempt = 0u32;
        loop {
            let status = self.post(token.clone()).await;
            if status == 200 {
                lock(&self.accepted).push(token);
                return;
            }
            self.note_5xx(status);
            if !(status >= 500 || status == 409) {
                self.stats.wrong_status.fetch_add(1, Ordering::Relaxed);
                eprintln!("soak: valid event {id} answered {status}");
                break;
            }
            if Instant::now() > deadline {
                eprintln!("soak: valid event {id} still answered {status} at the drain deadline");
                break;
            }
            attempt += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(10)))).await;
        }
        lock(&self.unanswered).push(id);
    }
}

async fn worker(shared: Arc<Shared>, worker_id: u64, stop_at: Instant, drain_until: Instant) {
    let forger = TestKey::attacker().with_kid("test-primary");
    let mut n = worker_id;
    while Instant::now() < stop_at {
        n += 1;
        match n % 10 {
            // 60 %: a new valid event.
            0..=5 => {
                let ev = TestEvent::sample("user.created");
                let id = ev.id().to_owned();
                let token = shared.issuer.sign(&ev.into_claims());
                shared.deliver(id, token, drain_until).await;
            }
            // 20 %: a duplicate of an accepted event (must be 200, never handled again).
            6 | 7 => {
                let earlier = {
                    let acc = lock(&shared.accepted);
                    (!acc.is_empty()).then(|| acc[(n as usize * 7919) % acc.len()].clone())
                };
                if let Some(token) = earlier {
                    shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    let status = shared.post(token).await;
                    shared.note_5xx(status);
                    if status != 200 && !(status >= 500 || status == 409) {
                        shared.stats.wrong_status.fetch_add(1, Ordering::Relaxed);
                        eprintln!("soak: a duplicate answered {status}");
                    }
                }
            }
            // 10 %: forged.
            8 => {
                shared.stats.forged.fetch_add(1, Ordering::Relaxed);
                let token = forger.sign(&TestEvent::sample("user.created").into_claims());
                let status = shared.post(token).await;
                if status != 401 {
                    shared.stats.wrong_status.fetch_add(1, Ordering::Relaxed);
                    eprintln!("soak: forged token answered {status}");
                }
            }
            // 10 %: oversized.
            _ => {
                shared.stats.oversized.fetch_add(1, Ordering::Relaxed);
                let status = shared
                    .post_with(&shared.oneshot, "a".repeat(300 * 1024))
                    .await;
                // 599: the connection closed after the 413, before the upload finished.
                if status != 413 && status != 599 {
                    shared.stats.wrong_status.fetch_add(1, Ordering::Relaxed);
                    eprintln!("soak: oversized body answered {status}");
                }
            }
        }
    }
}

/// Runs a shell command (off the runtime's threads); whether it ran and succeeded.
async fn sh(cmd: String) -> bool {
    let ran = tokio::task::spawn_blocking(move || {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status();
        match status {
            Ok(s) if s.success() => true,
            Ok(s) => {
                eprintln!("soak: `{cmd}` failed ({s})");
                false
            }
            Err(e) => {
                eprintln!("soak: cannot run `{cmd}`: {e}");
                false
            }
        }
    })
    .await;
    ran.unwrap_or(false)
}

#[tokio::main]
async fn main() {
    let url: String = env(
        "RECEIVER_URL",
        "http://127.0.0.1:3000/kinde/webhook".to_string(),
    );
    let pid: u32 = env("RECEIVER_PID", 0);
    let handled_file: String = env("HANDLED_FILE", String::new());
    let secs: u64 = env("SOAK_SECS", 300);
    let concurrency: u64 = env("CONCURRENCY", 8);
    let down_secs: u64 = env("SOAK_DOWN_SECS", 5);
    let drain_secs: u64 = env("SOAK_DRAIN_SECS", PROCESSING_TTL_SECS + 30);
    let request_timeout: u64 = env("SOAK_REQUEST_TIMEOUT_SECS", 30);
    let growth_limit: f64 = env("SOAK_RSS_GROWTH_MIB", 16.0);
    let stop_cmd: String = env("SOAK_STOP_CMD", String::new());
    let start_cmd: String = env("SOAK_START_CMD", String::new());
    if drain_secs <= PROCESSING_TTL_SECS {
        eprintln!(
            "soak: warning: a {drain_secs} s drain is not longer than the {PROCESSING_TTL_SECS} s \
             processing TTL; an event whose claim the restart left in progress will count as lost"
        );
    }

    let timeout = Duration::from_secs(request_timeout);
    let shared = Arc::new(Shared {
        url,
        client: reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("client"),
        oneshot: reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        issuer: TestIssuer::new(),
        stats: Stats::default(),
        delivered: Mutex::default(),
        accepted: Mutex::default(),
        unanswered: Mutex::default(),
        restart_window: AtomicBool::new(false),
    });
    // Warm up (a delivered event like the others), then take the starting RSS.
    let warm = TestEvent::sample("user.created");
    let (wid, wtoken) = (
        warm.id().to_owned(),
        shared.issuer.sign(&warm.into_claims()),
    );
    shared
        .deliver(wid, wtoken, Instant::now() + Duration::from_secs(30))
        .await;
    let rss_start = rss_mib(pid);
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(secs);
    let drain_until = stop_at + Duration::from_secs(drain_secs);
    let workers: Vec<_> = (0..concurrency)
        .map(|i| tokio::spawn(worker(shared.clone(), i * 1000, stop_at, drain_until)))
        .collect();

    let mut failures: Vec<String> = Vec::new();
    let restarted = !stop_cmd.is_empty();
    if restarted {
        tokio::time::sleep(Duration::from_secs(secs / 2)).await;
        shared.restart_window.store(true, Ordering::SeqCst);
        eprintln!("soak: stopping Redis at {:?}", started.elapsed());
        if !sh(stop_cmd).await {
            failures.push("the Redis stop command failed".into());
        }
        tokio::time::sleep(Duration::from_secs(down_secs)).await;
        if !sh(start_cmd).await {
            failures.push("the Redis start command failed".into());
        }
        eprintln!("soak: Redis back at {:?}", started.elapsed());
        // In-flight retries may still see the tail of the outage.
        tokio::time::sleep(Duration::from_secs(3)).await;
        shared.restart_window.store(false, Ordering::SeqCst);
    }
    // Every worker ends by the drain deadline plus one request and one pause; past that bound
    // it is stuck, and the soak fails rather than waits.
    let join_deadline = tokio::time::Instant::from_std(drain_until) + timeout * 2;
    for (i, w) in workers.into_iter().enumerate() {
        let abort = w.abort_handle();
        match tokio::time::timeout_at(join_deadline, w).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("worker {i} failed: {e}")),
            Err(_) => {
                abort.abort();
                failures.push(format!("worker {i} still running after the drain deadline"));
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_end = rss_mib(pid);

    let s = &shared.stats;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let run = report::Run {
        secs,
        concurrency,
        restart: restarted.then_some(down_secs),
        drain_secs,
        sent: load(&s.sent),
        duplicates: load(&s.duplicates),
        forged: load(&s.forged),
        oversized: load(&s.oversized),
        retries: load(&s.retries),
        five_xx_in_window: load(&s.five_xx_in_window),
        five_xx_outside: load(&s.five_xx_outside),
        wrong_status: load(&s.wrong_status),
        transport_errors: load(&s.transport_errors),
        rss_start,
        rss_end,
        growth_limit,
        delivered: lock(&shared.delivered).clone(),
        unanswered: lock(&shared.unanswered).len(),
    };
    match report::handled_lines(&handled_file) {
        Ok(per_id) => failures.extend(report::print(&run, &per_id)),
        Err(e) => failures.push(e),
    }
    for f in &failures {
        println!("soak: failure: {f}");
    }
    println!(
        "soak: {}",
        if failures.is_empty() { "PASS" } else { "FAIL" }
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
