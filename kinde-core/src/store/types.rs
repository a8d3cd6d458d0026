//! What the store protocol exchanges.

use std::time::Duration;

use crate::event::EventId;

/// Proof of a claim: only its holder can complete, release or fail it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh random token (128 bits).
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// A token from its string form (as stored, e.g. in Redis).
    pub fn from_string(s: String) -> Self {
        Self(s)
    }

    /// The string form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The entity an event is about, for ordering: its key (`user:kp_1`, `organization:org_1`, …)
/// and the event's signed timestamp in unix microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity<'a> {
    /// The entity key.
    pub key: &'a str,
    /// The event's signed `timestamp`, in microseconds since the Unix epoch.
    pub timestamp: i64,
}

/// A claim to make.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
#[must_use]
pub struct ClaimRequest<'a> {
    /// The event.
    pub event_id: &'a EventId,
    /// How long the claim holds if never settled.
    pub processing_ttl: Duration,
    /// How long a superseded event is remembered as handled.
    pub done_ttl: Duration,
    /// The entity, when ordering applies to the event.
    pub entity: Option<Entity<'a>>,
    /// A replay of a parked event: its parked state counts as new.
    pub replay: bool,
}

impl<'a> ClaimRequest<'a> {
    /// A claim of `event_id`, without ordering.
    pub fn new(event_id: &'a EventId, processing_ttl: Duration, done_ttl: Duration) -> Self {
        Self {
            event_id,
            processing_ttl,
            done_ttl,
            entity: None,
            replay: false,
        }
    }

    /// With ordering on this entity.
    pub fn entity(mut self, entity: Option<Entity<'a>>) -> Self {
        self.entity = entity;
        self
    }

    /// As a replay of a parked event.
    pub fn replay(mut self, replay: bool) -> Self {
        self.replay = replay;
        self
    }
}

/// The last event applied to an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Its signed timestamp, in unix microseconds.
    pub timestamp: i64,
    /// Whether it was a `*.deleted` (a tombstone).
    pub deleted: bool,
}

/// What the caller must do after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// New (or its earlier claim expired): run the handler, then complete, release or fail.
    StartProcessing {
        /// The claim's fencing token.
        token: ClaimToken,
        /// The entity's last applied event before this one (with ordering).
        previous: Option<Applied>,
    },
    /// Handled before: run nothing (answered [`Outcome::Duplicate`](crate::Outcome::Duplicate)).
    AlreadyHandled,
    /// Another delivery is being handled right now: run nothing (answered
    /// [`Outcome::InProgress`](crate::Outcome::InProgress), so Kinde retries later).
    InProgress,
    /// A later event of the same entity was applied (or is in progress): recorded handled, run
    /// nothing (answered [`Outcome::Superseded`](crate::Outcome::Superseded)).
    Superseded,
    /// Parked after failing too often: run nothing (answered
    /// [`Outcome::Parked`](crate::Outcome::Parked)).
    Parked,
}

/// How a claim is settled after the handler succeeded.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
#[must_use]
pub struct Completion<'a> {
    /// How long the event is remembered as handled.
    pub done_ttl: Duration,
    /// The entity, when ordering applies.
    pub entity: Option<Entity<'a>>,
    /// Whether the event deletes its entity (`*.deleted`): leaves a tombstone.
    pub deletes: bool,
}

impl<'a> Completion<'a> {
    /// Handled, remembered for `done_ttl`.
    pub fn new(done_ttl: Duration) -> Self {
        Self {
            done_ttl,
            entity: None,
            deletes: false,
        }
    }

    /// And applied to this entity (a tombstone when `deletes`).
    pub fn entity(mut self, entity: Option<Entity<'a>>, deletes: bool) -> Self {
        self.entity = entity;
        self.deletes = deletes;
        self
    }
}

/// Bounds of the parked set ([`WebhooksBuilder::park_limits`](crate::WebhooksBuilder::park_limits)).
/// Set with its setters; stores read its fields.
///
/// ```
/// use kinde_core::store::ParkLimits;
/// let limits = ParkLimits::default().events(1_000).bytes(8 * 1024 * 1024);
/// assert_eq!((limits.events, limits.bytes), (1_000, 8 * 1024 * 1024));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct ParkLimits {
    /// Most parked events (default 10 000).
    pub events: usize,
    /// Most bytes of parked tokens and errors (default 64 MiB).
    pub bytes: usize,
}

impl ParkLimits {
    /// Sets the most parked events (default 10 000; at least 1).
    pub fn events(mut self, events: usize) -> Self {
        self.events = events;
        self
    }

    /// Sets the most bytes of parked tokens and errors (default 64 MiB; at least 1).
    pub fn bytes(mut self, bytes: usize) -> Self {
        self.bytes = bytes;
        self
    }
}

impl Default for ParkLimits {
    fn default() -> Self {
        Self {
            events: 10_000,
            bytes: 64 * 1024 * 1024,
        }
    }
}

/// A failed attempt, to count (and park on the `park_after`-th).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Failure<'a> {
    /// Park on this many failures (at least 1).
    pub park_after: u32,
    /// Bounds of the parked set.
    pub limits: ParkLimits,
    /// How long failure counts are kept.
    pub done_ttl: Duration,
    /// The event type.
    pub event_type: &'a str,
    /// The raw token (the JWS as delivered), kept with a parked event for its replay.
    pub token: &'a str,
    /// What failed.
    pub error: &'a str,
    /// When, in unix milliseconds.
    pub at_ms: i64,
}

impl<'a> Failure<'a> {
    /// A failed attempt of an event of `event_type`, delivered as `token`, that failed with
    /// `error` at `at_ms` (unix milliseconds); parks on the `park_after`-th failure within
    /// `limits`, counts kept for `done_ttl`.
    pub fn new(
        park_after: u32,
        limits: ParkLimits,
        done_ttl: Duration,
        event_type: &'a str,
        token: &'a str,
        error: &'a str,
        at_ms: i64,
    ) -> Self {
        Self {
            park_after,
            limits,
            done_ttl,
            event_type,
            token,
            error,
            at_ms,
        }
    }
}

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failed {
    /// Counted and released: the next delivery is a new attempt.
    Released {
        /// Failed attempts so far.
        attempts: u32,
    },
    /// Parked on this attempt.
    Parked {
        /// Failed attempts so far.
        attempts: u32,
    },
    /// It should have been parked, but the parked set is full: released (the delivery fails as
    /// without parking, [`Outcome::HandlerFailed`](crate::Outcome::HandlerFailed) or
    /// [`Outcome::UnparseableEvent`](crate::Outcome::UnparseableEvent)).
    ParkFull {
        /// Failed attempts so far.
        attempts: u32,
    },
    /// The claim was no longer ours: nothing changed.
    Superseded,
}

/// An event set aside after failing `park_after` times; replay it with
/// [`Webhooks::replay`](crate::Webhooks::replay).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedEvent {
    /// The event.
    pub event_id: EventId,
    /// Its type.
    pub event_type: String,
    /// The raw token as delivered (re-verified on replay).
    pub token: String,
    /// Failed attempts.
    pub attempts: u32,
    /// The last failure.
    pub last_error: String,
    /// The first failed attempt, unix milliseconds.
    pub first_attempt_ms: i64,
    /// The last failed attempt, unix milliseconds.
    pub last_attempt_ms: i64,
}

impl ParkedEvent {
    /// What it costs against [`ParkLimits::bytes`].
    pub fn size(&self) -> usize {
        self.token.len() + self.last_error.len() + self.event_type.len() + self.event_id.len()
    }
}

/// Whether a fenced operation took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fenced {
    /// The token matched: done.
    Applied,
    /// The claim was no longer ours (it expired and was re-claimed, or is gone): nothing changed.
    Superseded,
}

/// A store that cannot answer right now. Deliveries fail closed, answered
/// [`Outcome::StoreUnavailable`](crate::Outcome::StoreUnavailable), so Kinde retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable or failed.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A command took longer than the configured timeout.
    #[error("store timed out after {0:?}")]
    Timeout(Duration),
    /// The store is full of in-progress claims and entity records and cannot take another.
    #[error("store full: {0} entries, none evictable")]
    Full(usize),
}
