//! The soak driver behind `bench/soak.sh` (not part of `cargo test`).
//!
//! Sends a bounded, mixed stream to a running receiver for `SOAK_SECS`: valid unique events,
//! duplicates of earlier ones, forged tokens and oversized bodies, with `CONCURRENCY` workers.
//! Halfway it runs `SOAK_STOP_CMD`, waits `SOAK_DOWN_SECS`, then `SOAK_START_CMD` (a Redis
//! restart). A valid delivery answered 5xx/409 is retried like Kinde would (after a pause) until
//! it gets 200, bounded by `SOAK_DRAIN_SECS` after the stream ends.
//!
//! At the end it compares the receiver's stdout (`HANDLED_FILE`, one `handled <type> <id>` line
//! per handler call) with the distinct valid events delivered, samples the receiver's RSS
//! (`RECEIVER_PID`) at start and end, and counts 5xx answers outside the restart window.
//! Prints a report; exits non-zero if an event was lost or doubled, a 5xx came outside the
//! window, or RSS grew by more than `SOAK_RSS_GROWTH_MIB` (default 16).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinde_core::testing::{TestEvent, TestIssuer, TestKey};

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

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    valid_first: AtomicU64,
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
    accepted: Mutex<Vec<(String, String)>>, // (event id, token) answered 200
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

    /// Delivers a valid token until it gets 200, like Kinde's retries (pauses, bounded).
    async fn deliver(&self, id: String, token: String, deadline: Instant) {
        let mut attempt = 0u32;
        loop {
            let status = self.post(token.clone()).await;
            if status == 200 {
                self.accepted.lock().unwrap().push((id, token));
                return;
            }
            self.note_5xx(status);
            if !(status >= 500 || status == 409) {
                self.stats.wrong_status.fetch_add(1, Ordering::Relaxed);
                eprintln!("valid event {id} answered {status}");
                return;
            }
            if Instant::now() > deadline {
                eprintln!("valid event {id} still answered {status} at the deadline");
                return;
            }
            attempt += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(10)))).await;
        }
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
                shared.stats.valid_first.fetch_add(1, Ordering::Relaxed);
                shared.deliver(id, token, drain_until).await;
            }
            // 20 %: a duplicate of an accepted event (must be 200, never handled again).
            6 | 7 => {
                let earlier = {
                    let acc = shared.accepted.lock().unwrap();
                    (!acc.is_empty()).then(|| acc[(n as usize * 7919) % acc.len()].1.clone())
                };
                if let Some(token) = earlier {
                    shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    let status = shared.post(token).await;
                    shared.note_5xx(status);
                    if status != 200 && !(status >= 500 || status == 409) {
                        shared.stats.wrong_status.fetch_add(1, Ordering::Relaxed);
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
                    eprintln!("forged token answered {status}");
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
                    eprintln!("oversized body answered {status}");
                }
            }
        }
    }
}

fn sh(cmd: &str) {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .map(|s| s.success());
    if ok.ok() != Some(true) {
        eprintln!("soak: `{cmd}` failed");
    }
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
    let drain_secs: u64 = env("SOAK_DRAIN_SECS", 60);
    let growth_limit: f64 = env("SOAK_RSS_GROWTH_MIB", 16.0);
    let stop_cmd: String = env("SOAK_STOP_CMD", String::new());
    let start_cmd: String = env("SOAK_START_CMD", String::new());

    let shared = Arc::new(Shared {
        url,
        client: reqwest::Client::new(),
        oneshot: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        issuer: TestIssuer::new(),
        stats: Stats::default(),
        accepted: Mutex::new(Vec::new()),
        restart_window: AtomicBool::new(false),
    });
    // Warm up, then take the starting RSS.
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

    if !stop_cmd.is_empty() {
        tokio::time::sleep(Duration::from_secs(secs / 2)).await;
        shared.restart_window.store(true, Ordering::SeqCst);
        eprintln!("soak: stopping Redis at {:?}", started.elapsed());
        sh(&stop_cmd);
        tokio::time::sleep(Duration::from_secs(down_secs)).await;
        sh(&start_cmd);
        eprintln!("soak: Redis back at {:?}", started.elapsed());
        // In-flight retries may still see the tail of the outage.
        tokio::time::sleep(Duration::from_secs(3)).await;
        shared.restart_window.store(false, Ordering::SeqCst);
    }
    for w in workers {
        let _ = w.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_end = rss_mib(pid);

    let accepted: HashSet<String> = shared
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let lines = std::fs::read_to_string(&handled_file).unwrap_or_default();
    let handled: Vec<&str> = lines
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let handled_set: HashSet<&str> = handled.iter().copied().collect();
    let doubled = handled.len() - handled_set.len();
    let lost = accepted
        .iter()
        .filter(|id| !handled_set.contains(id.as_str()))
        .count();
    let s = &shared.stats;
    let growth = rss_end - rss_start;
    println!("soak: {secs} s, {concurrency} workers, Redis restarted once ({down_secs} s down)");
    println!(
        "requests: {} (valid new {}, duplicates {}, forged {}, oversized {}, retries {})",
        s.sent.load(Ordering::Relaxed),
        s.valid_first.load(Ordering::Relaxed),
        s.duplicates.load(Ordering::Relaxed),
        s.forged.load(Ordering::Relaxed),
        s.oversized.load(Ordering::Relaxed),
        s.retries.load(Ordering::Relaxed)
    );
    println!(
        "distinct valid events delivered (200): {}; handler calls: {}; lost: {lost}; handled twice: {doubled}",
        accepted.len(),
        handled.len()
    );
    println!(
        "5xx/409 during the Redis restart: {}; 5xx outside it: {}; unexpected statuses: {}",
        s.five_xx_in_window.load(Ordering::Relaxed),
        s.five_xx_outside.load(Ordering::Relaxed),
        s.wrong_status.load(Ordering::Relaxed)
    );
    println!(
        "transport errors (connection closed after a 413 included): {}",
        s.transport_errors.load(Ordering::Relaxed)
    );
    println!("receiver RSS: start {rss_start:.1} MiB, end {rss_end:.1} MiB (growth {growth:.1} MiB, bound {growth_limit} MiB)");
    let ok = lost == 0
        && doubled == 0
        && handled.len() == accepted.len()
        && s.five_xx_outside.load(Ordering::Relaxed) == 0
        && s.wrong_status.load(Ordering::Relaxed) == 0
        && growth <= growth_limit;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}
