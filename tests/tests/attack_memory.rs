//! Memory under attack, measured (issue 14): uploads stalled just under the body limit, far more
//! of them than permits, against a real server per adapter built the way the receivers are.
//! The resident set may grow by at most `body_limit × max_in_flight` plus [`CONSTANT_KIB`]:
//! the uploads past the cap are refused before their bodies are read (`503
//! too_many_deliveries`), the permit holders are closed by the body deadline (`408`).
//!
//! RSS is per process (client and server share it here), so this file holds one test, which
//! runs the two adapters one after the other.

#[path = "attack/servers.rs"]
mod servers;
#[path = "attack/wire.rs"]
mod wire;

use std::time::Duration;

use futures_util::future::join_all;
use servers::{Adapter, Limits, Receiver};
use wire::{Conn, Ending};

/// A bound against hanging, never a timing assertion.
const BOUND: Duration = Duration::from_secs(30);

const BODY_LIMIT: usize = 256 * 1024;
const PERMITS: usize = 8;

/// What the resident set may grow by besides the bodies: the state of a few hundred
/// connections on both sides (tokio tasks, hyper/actix-web read and write buffers of a few KiB
/// each), the allocator's per-thread arenas, and the stacks of the actix-web workers. Measured:
/// +6 MiB (axum) and +8 MiB (actix-web) in all on a 2-core machine. actix-web's default 1 s
/// linger after a refused upload (128 KiB read buffers, discarded) would take it to +65 MiB:
/// the actix receiver turns it off.
const CONSTANT_KIB: u64 = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_hold_at_most_the_limit_times_the_permits() {
    let n = wire::connections(500, 1);
    for adapter in [Adapter::Axum, Adapter::Actix] {
        attack(adapter, n).await;
    }
}

async fn attack(adapter: Adapter, n: usize) {
    let limits = Limits {
        body_limit: BODY_LIMIT,
        max_in_flight: PERMITS,
        body_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let r = Receiver::start(adapter, limits).await;
    let token = r.token();
    let probe = r.token();
    // Warm: one delivery through every layer before the baseline.
    assert_eq!(deliver(&r, &r.token()).await, (200, "handled".into()));
    let body = vec![b'a'; BODY_LIMIT - 1];

    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let start = wire::status_kib("VmRSS").expect("VmRSS readable");

    // The permit holders: each waits for `100 Continue` (its body is being read: it holds a
    // permit), then sends all but one byte of the limit, and stalls.
    let mut holders = Vec::new();
    for _ in 0..PERMITS {
        let mut c = Conn::open(r.addr).await;
        let head = wire::head(r.addr, BODY_LIMIT, "expect: 100-continue\r\n");
        assert!(c.send(head.as_bytes()).await);
        let interim = tokio::time::timeout(BOUND, c.next_answer(true))
            .await
            .expect("100 Continue within the bound")
            .expect("no reset")
            .expect("an interim answer");
        assert_eq!(interim.status, 100, "{adapter:?}: {interim:?}");
        assert!(c.send(&body).await);
        holders.push(c);
    }
    // Everyone else sends the same: all but one byte of the limit, and stalls.
    let mut extra = Vec::new();
    let mut peak = start;
    for _ in PERMITS..n {
        let mut c = Conn::open(r.addr).await;
        let mut bytes = wire::head(r.addr, BODY_LIMIT, "").into_bytes();
        bytes.extend_from_slice(&body);
        // Refused after the head: the write may fail (the server closed), never hang.
        let _ = tokio::time::timeout(BOUND, c.send(&bytes))
            .await
            .expect("the write ends within the bound");
        extra.push(c);
        peak = peak.max(wire::status_kib("VmRSS").unwrap_or(0));
    }
    let refused = deliver(&r, &probe).await;
    assert_eq!(refused, (503, "too_many_deliveries".into()), "{adapter:?}");
    peak = peak.max(wire::status_kib("VmRSS").unwrap_or(0));

    let extra_endings = join_all(extra.into_iter().map(|c| c.ending(BOUND))).await;
    let mut answered_503 = 0;
    for (i, ending) in extra_endings.iter().enumerate() {
        match ending {
            Ending::Answered(a) => {
                assert_eq!(a.code(), (503, "too_many_deliveries".into()), "#{i}");
                answered_503 += 1;
            }
            // Refused while still sending: the close may reach the client as a reset first.
            Ending::Reset(_) | Ending::Closed => {}
            other => panic!("{adapter:?} upload #{i} past the cap: {other:?}"),
        }
    }
    let holder_endings = join_all(holders.into_iter().map(|c| c.ending(BOUND))).await;
    for (i, ending) in holder_endings.iter().enumerate() {
        match ending {
            Ending::Answered(a) => assert_eq!(a.code(), (408, "body_timeout".into()), "#{i}"),
            other => panic!("{adapter:?} permit holder #{i}: {other:?}, not a 408 and a close"),
        }
    }
    let peak = peak
        .max(wire::status_kib("VmRSS").unwrap_or(0))
        .max(if peak_reset {
            wire::status_kib("VmHWM").unwrap_or(0)
        } else {
            0
        });
    // The permits are back.
    assert_eq!(deliver(&r, &token).await, (200, "handled".into()));
    r.stop().await;

    let bodies_kib = (BODY_LIMIT * PERMITS / 1024) as u64;
    let bound = start + bodies_kib + CONSTANT_KIB;
    let unbounded_kib = (BODY_LIMIT * n / 1024) as u64;
    eprintln!(
        "{adapter:?}: {n} uploads of {} KiB, {PERMITS} permits ({answered_503} answered 503, \
         {} reset or closed first): RSS {start} KiB -> peak {peak} KiB (+{} KiB; bound +{} KiB = \
         body_limit x permits {bodies_kib} KiB + constant {CONSTANT_KIB} KiB; peak measured \
         with {}; every body buffered would be +{unbounded_kib} KiB)",
        BODY_LIMIT / 1024,
        n - PERMITS - answered_503,
        peak.saturating_sub(start),
        bodies_kib + CONSTANT_KIB,
        if peak_reset { "VmHWM" } else { "VmRSS samples" },
    );
    assert!(
        peak <= bound,
        "{adapter:?}: RSS grew from {start} KiB to {peak} KiB, past start + {bodies_kib} KiB \
         (body_limit x permits) + {CONSTANT_KIB} KiB"
    );
    if unbounded_kib <= bodies_kib + CONSTANT_KIB {
        eprintln!(
            "note: with {n} connections (RLIMIT_NOFILE) the bound cannot tell a bounded server \
             from one buffering every body"
        );
    }
}

/// Sends a whole delivery on a new connection: `(status, code)`.
async fn deliver(r: &Receiver, token: &str) -> (u16, String) {
    let mut c = Conn::open(r.addr).await;
    assert!(c.send(&wire::delivery(r.addr, token)).await);
    tokio::time::timeout(BOUND, c.next_answer(false))
        .await
        .expect("an answer within the bound")
        .expect("no reset")
        .expect("an answer before the close")
        .code()
}
