//! The soak's report: `lost = delivered − handled`, `doubled`, the other counts, and what fails.

use std::collections::{HashMap, HashSet};

/// What one soak run did, as the driver counted it.
pub struct Run {
    pub secs: u64,
    pub concurrency: u64,
    /// Seconds Redis was down, if it was restarted.
    pub restart: Option<u64>,
    pub drain_secs: u64,
    pub sent: u64,
    pub duplicates: u64,
    pub forged: u64,
    pub oversized: u64,
    pub retries: u64,
    pub five_xx_in_window: u64,
    pub five_xx_outside: u64,
    pub wrong_status: u64,
    pub transport_errors: u64,
    pub rss_start: f64,
    pub rss_end: f64,
    pub growth_limit: f64,
    /// Every distinct valid event sent.
    pub delivered: HashSet<String>,
    /// Valid events never answered 200.
    pub unanswered: usize,
}

/// The receiver's `handled <type> <id>` lines: the number of lines per id. Any other line is an
/// error (stdout carries only these).
pub fn handled_lines(file: &str) -> Result<HashMap<String, u64>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file:?}: {e}"))?;
    let mut per_id = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("handled"), Some(_type), Some(id), None) => {
                *per_id.entry(id.to_owned()).or_insert(0) += 1;
            }
            _ => {
                return Err(format!(
                    "a stdout line is not `handled <type> <id>`: {line:?}"
                ))
            }
        }
    }
    Ok(per_id)
}

/// Prints the report; returns what fails the soak.
pub fn print(run: &Run, per_id: &HashMap<String, u64>) -> Vec<String> {
    let lines: u64 = per_id.values().sum();
    let doubled: u64 = per_id.values().map(|n| n - 1).sum();
    let lost: Vec<&String> = run
        .delivered
        .iter()
        .filter(|id| !per_id.contains_key(*id))
        .collect();
    let phantom = per_id
        .keys()
        .filter(|id| !run.delivered.contains(*id))
        .count();
    let growth = run.rss_end - run.rss_start;
    let restart = match run.restart {
        Some(down) => format!("Redis restarted once ({down} s down)"),
        None => "no Redis restart".to_owned(),
    };
    println!(
        "soak: {} s, {} workers, {restart}, drain up to {} s",
        run.secs, run.concurrency, run.drain_secs
    );
    println!(
        "requests: {} (valid new {}, duplicates {}, forged {}, oversized {}, retries {})",
        run.sent,
        run.delivered.len(),
        run.duplicates,
        run.forged,
        run.oversized,
        run.retries
    );
    println!(
        "delivered (distinct valid events sent): {}; handled (distinct ids in `handled` lines): {}; handler lines: {lines}",
        run.delivered.len(),
        per_id.len()
    );
    println!(
        "lost = delivered − handled: {}; never answered 200: {}; doubled (lines beyond one per id): {doubled}; handled but never sent: {phantom}",
        lost.len(),
        run.unanswered
    );
    for id in lost.iter().take(10) {
        println!("  lost: {id}");
    }
    println!(
        "5xx/409 during the Redis restart: {}; 5xx outside it: {}; unexpected statuses: {}",
        run.five_xx_in_window, run.five_xx_outside, run.wrong_status
    );
    println!(
        "transport errors (connections closed after a 413 included): {}",
        run.transport_errors
    );
    println!(
        "receiver RSS: start {:.1} MiB, end {:.1} MiB (growth {growth:.1} MiB, bound {} MiB)",
        run.rss_start, run.rss_end, run.growth_limit
    );
    [
        (!lost.is_empty(), format!("{} event(s) lost", lost.len())),
        (
            doubled > 0,
            format!("{doubled} handler call(s) beyond one per event"),
        ),
        (phantom > 0, format!("{phantom} handled id(s) never sent")),
        (
            run.five_xx_outside > 0,
            "5xx outside the restart window".to_owned(),
        ),
        (run.wrong_status > 0, "unexpected statuses".to_owned()),
        (
            growth.is_nan() || growth > run.growth_limit,
            format!(
                "RSS growth {growth:.1} MiB over {} MiB (or unreadable)",
                run.growth_limit
            ),
        ),
    ]
    .into_iter()
    .filter_map(|(bad, what)| bad.then_some(what))
    .collect()
}
