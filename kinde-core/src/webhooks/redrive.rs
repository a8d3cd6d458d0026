//! An opt-in background re-drive of parked events, with exponential back-off: what
//! [`Webhooks::replay`] does by hand, on a schedule, beyond Kinde's ~36 h of retries.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Outcome, ReplayError, Webhooks};
use crate::event::EventId;
use crate::store::ParkedEvent;

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// `t + d`, or a century after `t` where that cannot be represented (a delay set to
/// `Duration::MAX`, say): never a panic.
fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .or_else(|| t.checked_add(100 * YEAR))
        .unwrap_or(t)
}

/// Replays parked events on a schedule (parking: [`WebhooksBuilder::park_after`]).
///
/// A parked event's first re-drive is due [`first_delay`](Self::first_delay) after its last
/// failed attempt; each one that fails again is counted on the event (one more attempt, as
/// [`Webhooks::replay`] counts it) and doubles the delay, up to [`max_delay`](Self::max_delay).
/// Every [`interval`](Self::interval), the parked events are listed (oldest first) and at most
/// [`batch`](Self::batch) due ones are replayed. A replay that cannot run at all (the token
/// no longer verifies, the store cannot answer) is held back the same way, in this re-drive's
/// memory. Each replay is [`Webhooks::replay`]: the signature verified again, a fresh claim,
/// ordering applied; so running a re-drive in every replica sharing one store is safe (one
/// replay of an event runs at a time, the others see it in progress).
///
/// Defaults: a look every minute, first retry 5 minutes after the last failure, at most every
/// 6 hours, 100 replays per look.
///
/// ```no_run
/// # async fn demo(webhooks: kinde_core::Webhooks) {
/// use std::time::Duration;
/// use kinde_core::Redrive;
///
/// // Alongside the server, for as long as the app runs:
/// tokio::spawn(Redrive::new(webhooks.clone()).first_delay(Duration::from_secs(600)).run());
/// # }
/// ```
///
/// [`WebhooksBuilder::park_after`]: crate::WebhooksBuilder::park_after
#[derive(Clone)]
#[must_use = "a re-drive does nothing until `run` (or `run_once`) is awaited"]
pub struct Redrive {
    webhooks: Webhooks,
    interval: Duration,
    first_delay: Duration,
    max_delay: Duration,
    batch: usize,
    /// Events whose replay could not run: failures so far and when to try again.
    held: HashMap<EventId, (u32, SystemTime)>,
}

impl std::fmt::Debug for Redrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redrive")
            .field("interval", &self.interval)
            .field("first_delay", &self.first_delay)
            .field("max_delay", &self.max_delay)
            .field("batch", &self.batch)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

/// What one look at the parked events did ([`Redrive::run_once`]).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RedriveReport {
    /// The events replayed, oldest first, with how each replay answered (`Handled`: done and
    /// unparked; `Parked`: failed again, its delay doubled; `InProgress`: a delivery of it is
    /// running, tried again at the next look).
    pub replayed: Vec<(EventId, Outcome)>,
    /// Replays that could not run, with why (held back, their delay doubling).
    pub failed: Vec<(EventId, String)>,
    /// Parked events not due yet (or left for the next look by the batch bound).
    pub waiting: usize,
}

impl Redrive {
    /// A re-drive of `webhooks`' parked events, with the defaults.
    pub fn new(webhooks: Webhooks) -> Self {
        Self {
            webhooks,
            interval: Duration::from_secs(60),
            first_delay: Duration::from_secs(5 * 60),
            max_delay: Duration::from_secs(6 * 3600),
            batch: 100,
            held: HashMap::new(),
        }
    }

    /// How often the parked events are looked at (default 1 minute; at least 1 ms, at most a
    /// year).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.clamp(Duration::from_millis(1), YEAR);
        self
    }

    /// The delay from a parked event's last failed attempt to its first re-drive (default 5
    /// minutes).
    pub fn first_delay(mut self, delay: Duration) -> Self {
        self.first_delay = delay;
        self
    }

    /// The longest delay between two re-drives of one event (default 6 hours).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Replays per look at most (default 100; at least 1): the rest wait for the next look.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// The delay before re-drive `retry` (0 for the first) of an event: `first_delay × 2^retry`,
    /// at most `max_delay`.
    ///
    /// ```
    /// # async fn demo(webhooks: kinde_core::Webhooks) {
    /// use std::time::Duration;
    /// let r = kinde_core::Redrive::new(webhooks)
    ///     .first_delay(Duration::from_secs(60))
    ///     .max_delay(Duration::from_secs(300));
    /// assert_eq!(r.delay(0), Duration::from_secs(60));
    /// assert_eq!(r.delay(2), Duration::from_secs(240));
    /// assert_eq!(r.delay(3), Duration::from_secs(300));
    /// # }
    /// ```
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// When `parked` is due: its last failed attempt plus the delay for the re-drives it has
    /// had (its attempts beyond the parking threshold).
    pub fn due_at(&self, parked: &ParkedEvent) -> SystemTime {
        let park_after = self.webhooks.inner.park_after.unwrap_or(1);
        let retries = parked.attempts.saturating_sub(park_after);
        let last =
            UNIX_EPOCH + Duration::from_millis(u64::try_from(parked.last_attempt_ms).unwrap_or(0));
        later(last, self.delay(retries))
    }

    /// One look at the parked events as of `now`: replays the due ones (at most
    /// [`batch`](Self::batch)), oldest first. What [`run`](Self::run) does every interval;
    /// call it yourself to drive the schedule from a job runner.
    pub async fn run_once(&mut self, now: SystemTime) -> RedriveReport {
        let mut report = RedriveReport::default();
        let parked = match self.webhooks.parked().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "re-drive: the parked events could not be listed; trying again at the next look");
                return report;
            }
        };
        let listed: HashSet<&EventId> = parked.iter().map(|p| &p.event_id).collect();
        self.held.retain(|id, _| listed.contains(id));
        for p in &parked {
            let held_until = self.held.get(&p.event_id).map(|(_, at)| *at);
            let due = self.due_at(p) <= now && held_until.is_none_or(|at| at <= now);
            if !due || report.replayed.len() + report.failed.len() >= self.batch {
                report.waiting += 1;
                continue;
            }
            match self.webhooks.replay(&p.event_id).await {
                Ok(outcome) => {
                    self.held.remove(&p.event_id);
                    report.replayed.push((p.event_id.clone(), outcome));
                }
                // Replayed meanwhile (by hand, or another replica): nothing to do.
                Err(ReplayError::NotParked(_)) => {
                    self.held.remove(&p.event_id);
                }
                Err(e) => {
                    let failures = self.held.get(&p.event_id).map_or(0, |(n, _)| *n);
                    let next = later(now, self.delay(failures));
                    self.held.insert(p.event_id.clone(), (failures + 1, next));
                    tracing::warn!(event_id = p.event_id.as_str(), error = %e, "re-drive: the replay could not run; held back");
                    report.failed.push((p.event_id.clone(), e.to_string()));
                }
            }
        }
        report
    }

    /// Looks at the parked events every [`interval`](Self::interval), forever: spawn it beside
    /// the server (`tokio::spawn(redrive.run())`) and drop the task to stop it.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let report = self.run_once(SystemTime::now()).await;
            if !report.replayed.is_empty() || !report.failed.is_empty() {
                tracing::info!(
                    replayed = report.replayed.len(),
                    failed = report.failed.len(),
                    waiting = report.waiting,
                    "re-drive: parked events replayed"
                );
            }
        }
    }
}
