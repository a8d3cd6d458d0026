//! The bounds for strangers, under attack, against real servers on 127.0.0.1 built the way the
//! receiver examples are (`attack/servers.rs`), for both adapters: stalled and trickled uploads,
//! a trickled request head, and busy keep-alive connections. Memory under attack is measured
//! alone, in `attack_memory.rs` (RSS is per process).
//!
//! Every wait is bounded by [`BOUND`], a bound against hanging, never a timing assertion: a
//! deadline is checked by what happened (an answer, a close), not by how long it took.

#[path = "attack/servers.rs"]
mod servers;
#[path = "attack/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use servers::{Adapter, Limits, Receiver};
use wire::{Conn, Ending};

/// The longest any single wait may take: only a hang reaches it.
const BOUND: Duration = Duration::from_secs(30);

/// The tests of this file holding many connections at once (for the descriptor budget).
const HEAVY_TESTS: usize = 4;

/// Runs `$test(adapter)` once per adapter, as `$name::axum` and `$name::actix`.
macro_rules! both_adapters {
    ($name:ident, $test:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn axum() {
                $test(Adapter::Axum).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn actix() {
                $test(Adapter::Actix).await
            }
        }
    };
}

/// The first bytes of a token: a body that has begun and stopped.
const STARTED: &[u8] = b"eyJhbGciOiJSUzI1NiIs";

/// Opens `n` uploads that declare `declared` bytes, send [`STARTED`] and then nothing.
async fn stall(r: &Receiver, n: usize, declared: usize, extra_head: &str) -> Vec<Conn> {
    let mut stalled = Vec::with_capacity(n);
    for _ in 0..n {
        let mut bytes = wire::head(r.addr, declared, extra_head).into_bytes();
        bytes.extend_from_slice(STARTED);
        stalled.push(open_and_send(r, &bytes).await);
    }
    stalled
}

/// Opens `n` chunked uploads that send half a chunk of [`STARTED`] and then nothing.
async fn stall_chunked(r: &Receiver, n: usize) -> Vec<Conn> {
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/jwt\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n",
        wire::PATH,
        r.addr,
        STARTED.len() * 2
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(STARTED);
    let mut stalled = Vec::with_capacity(n);
    for _ in 0..n {
        stalled.push(open_and_send(r, &bytes).await);
    }
    stalled
}

async fn open_and_send(r: &Receiver, bytes: &[u8]) -> Conn {
    let mut c = Conn::open(r.addr).await;
    assert!(c.send(bytes).await, "the server refused a connection");
    c
}

/// Sends a whole delivery on a new connection and returns its answer.
async fn deliver(r: &Receiver, token: &str) -> wire::Answer {
    let mut c = Conn::open(r.addr).await;
    assert!(c.send(&wire::delivery(r.addr, token)).await);
    tokio::time::timeout(BOUND, c.next_answer(false))
        .await
        .expect("an answer within the bound")
        .expect("no reset")
        .expect("an answer before the close")
}

/// Whether the server has neither answered nor closed `c` yet.
fn still_waiting(c: &Conn) -> bool {
    let mut byte = [0u8; 1];
    matches!(c.stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Asserts that every ending is the 408 the body deadline answers, followed by the close.
fn all_timed_out(adapter: Adapter, endings: &[Ending]) {
    for (i, ending) in endings.iter().enumerate() {
        match ending {
            Ending::Answered(a) => {
                assert_eq!(a.code(), (408, "body_timeout".into()), "{adapter:?} #{i}");
                assert_eq!(a.header("connection"), Some("close"), "{adapter:?} #{i}");
            }
            other => panic!("{adapter:?} stalled upload #{i}: {other:?}, not a 408 and a close"),
        }
    }
}

both_adapters!(
    stalled_bodies_below_the_cap_do_not_delay_a_delivery_and_are_closed_by_the_deadline,
    stalled_below_the_cap
);

async fn stalled_below_the_cap(adapter: Adapter) {
    let n = wire::connections(500, HEAVY_TESTS);
    let limits = Limits {
        max_in_flight: n + 8,
        body_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let r = Receiver::start(adapter, limits).await;
    let token = r.token(); // signed before any clock starts
    let stalled = stall(&r, n, 1000, "").await;

    let answer = deliver(&r, &token).await;
    assert_eq!(answer.code(), (200, "handled".into()), "{adapter:?}");
    assert_eq!(r.calls(), 1);
    // The delivery was answered while every stalled upload was still held (otherwise this
    // proves nothing): none has had an answer or a close yet.
    let waiting = stalled.iter().filter(|c| still_waiting(c)).count();
    assert_eq!(
        waiting, n,
        "{adapter:?}: some stalled uploads were answered before the delivery \
         (the machine took longer than the 5 s body deadline to open {n} connections)"
    );

    let started = Instant::now();
    let endings = join_all(stalled.into_iter().map(|c| c.ending(BOUND))).await;
    all_timed_out(adapter, &endings);
    eprintln!(
        "{adapter:?}: {n} stalled uploads all answered 408 and closed, {:?} after the delivery",
        started.elapsed()
    );
    // Their permits came back.
    let answer = deliver(&r, &r.token()).await;
    assert_eq!(answer.code(), (200, "handled".into()), "{adapter:?}");
    r.stop().await;
}

both_adapters!(
    stalled_uploads_at_the_cap_make_new_deliveries_503_never_a_hang,
    stalled_at_the_cap
);

async fn stalled_at_the_cap(adapter: Adapter) {
    const PERMITS: usize = 8;
    let n = wire::connections(500, HEAVY_TESTS);
    let limits = Limits {
        max_in_flight: PERMITS,
        body_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let r = Receiver::start(adapter, limits).await;
    let token = r.token();
    // The permit holders: each waits for `100 Continue` (sent once its body is being read, so
    // once it holds a permit), then stalls.
    let mut holders = Vec::new();
    for _ in 0..PERMITS {
        let mut c = Conn::open(r.addr).await;
        let head = wire::head(r.addr, 1000, "expect: 100-continue\r\n");
        assert!(c.send(head.as_bytes()).await);
        let interim = tokio::time::timeout(BOUND, c.next_answer(true))
            .await
            .expect("100 Continue within the bound")
            .expect("no reset")
            .expect("an interim answer");
        assert_eq!(interim.status, 100, "{adapter:?}: {interim:?}");
        assert!(c.send(STARTED).await);
        holders.push(c);
    }
    // Past the cap: every other upload (half of them chunked), and a whole delivery, is
    // refused at once, and its connection closed.
    let extra_chunked = (n - PERMITS) / 2;
    let mut extra = stall(&r, n - PERMITS - extra_chunked, 1000, "").await;
    extra.extend(stall_chunked(&r, extra_chunked).await);
    let refused = deliver(&r, &token).await;
    assert_eq!(
        refused.code(),
        (503, "too_many_deliveries".into()),
        "{adapter:?}"
    );
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    assert_eq!(r.calls(), 0);
    let endings = join_all(extra.into_iter().map(|c| c.ending(BOUND))).await;
    for (i, ending) in endings.iter().enumerate() {
        match ending {
            Ending::Answered(a) => {
                assert_eq!(a.code(), (503, "too_many_deliveries".into()), "#{i}");
                assert!(a.header("retry-after").is_some(), "#{i}: {a:?}");
            }
            other => panic!("{adapter:?} upload #{i} past the cap: {other:?}"),
        }
    }
    // The holders are answered by the deadline and closed; then the permits are free again.
    let endings = join_all(holders.into_iter().map(|c| c.ending(BOUND))).await;
    all_timed_out(adapter, &endings);
    let answer = deliver(&r, &token).await;
    assert_eq!(answer.code(), (200, "handled".into()), "{adapter:?}");
    eprintln!(
        "{adapter:?}: {PERMITS} held, {} refused 503 at once, all closed",
        n - PERMITS
    );
    r.stop().await;
}

both_adapters!(a_trickle_is_cut_off_by_the_total_deadline, trickle);

/// One byte per 100 ms — far less than the deadline apart, so only a total deadline (not an
/// idle timeout) ends it — with a declared length, then chunked.
async fn trickle(adapter: Adapter) {
    let limits = Limits {
        body_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let r = Receiver::start(adapter, limits).await;
    for chunked in [false, true] {
        let framing = if chunked {
            "transfer-encoding: chunked\r\n"
        } else {
            "content-length: 1000\r\n"
        };
        let head = format!(
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/jwt\r\n{framing}\r\n",
            wire::PATH,
            r.addr
        );
        let c = Conn::open(r.addr).await;
        let (rd, mut wr) = c.stream.into_split();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let mut sent = 0usize;
            if wr.write_all(head.as_bytes()).await.is_err() {
                return sent;
            }
            let byte: &[u8] = if chunked { b"1\r\nx\r\n" } else { b"x" };
            // Until the server lets go (or a bound: 600 bytes is a minute).
            while sent < 600 && wr.write_all(byte).await.is_ok() {
                sent += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sent
        });
        let c = Conn::from_read_half(rd);
        let ending = c.ending(BOUND).await;
        let sent = tokio::time::timeout(BOUND, writer)
            .await
            .expect("the writer stops once the server lets go")
            .unwrap();
        match &ending {
            // Still sending when the server closed: the answer may be lost to a reset.
            Ending::Answered(a) => assert_eq!(a.code(), (408, "body_timeout".into())),
            Ending::Reset(_) | Ending::Closed => {}
            other => panic!("{adapter:?} chunked={chunked}: {other:?}"),
        }
        assert!(sent < 600, "{adapter:?} chunked={chunked}: never cut off");
        eprintln!("{adapter:?} chunked={chunked}: cut off after {sent} bytes: {ending:?}");
    }
    assert_eq!(r.calls(), 0);
    r.stop().await;
}

both_adapters!(a_trickled_request_head_is_closed, trickled_head);

/// A head that never ends, one byte per 100 ms: closed by the server's header read timeout.
async fn trickled_head(adapter: Adapter) {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let r = Receiver::start(adapter, limits).await;
    let c = Conn::open(r.addr).await;
    let (rd, mut wr) = c.stream.into_split();
    let start = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\nx-slow: ",
        wire::PATH,
        r.addr
    );
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let mut sent = 0usize;
        if wr.write_all(start.as_bytes()).await.is_err() {
            return sent;
        }
        while sent < 600 && wr.write_all(b"a").await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    });
    let ending = Conn::from_read_half(rd).ending(BOUND).await;
    let sent = tokio::time::timeout(BOUND, writer)
        .await
        .expect("the writer stops once the server lets go")
        .unwrap();
    match &ending {
        // hyper closes; actix-web answers 408 first (an answer a reset may swallow).
        Ending::Closed | Ending::Reset(_) => {}
        Ending::Answered(a) => assert_eq!(a.status, 408, "{a:?}"),
        other => panic!("{adapter:?}: {other:?}"),
    }
    assert!(sent < 600, "{adapter:?}: never cut off");
    eprintln!("{adapter:?}: trickled head cut off after {sent} bytes: {ending:?}");
    r.stop().await;
}

both_adapters!(
    busy_keep_alive_connections_outlive_both_timeouts,
    busy_keep_alive
);

/// One connection, deliveries back to back (pipelined: the next request is always sent before
/// the answer to the last one is read, so the server never waits for a head or a body) for
/// three times longer than both timeouts: never closed, every answer 200.
async fn busy_keep_alive(adapter: Adapter) {
    let timeouts = Duration::from_secs(1);
    let limits = Limits {
        header_read_timeout: timeouts,
        body_timeout: timeouts,
        ..Limits::default()
    };
    let r = Receiver::start(adapter, limits).await;
    let request = wire::delivery(r.addr, &r.token());
    let mut c = Conn::open(r.addr).await;
    assert!(c.send(&request).await);
    let started = Instant::now();
    let mut answers = Vec::new();
    while started.elapsed() < timeouts * 3 {
        assert!(c.send(&request).await, "{adapter:?}: closed mid-run");
        let answer = tokio::time::timeout(BOUND, c.next_answer(false))
            .await
            .expect("an answer within the bound")
            .expect("no reset")
            .unwrap_or_else(|| panic!("{adapter:?}: closed after {} answers", answers.len()));
        answers.push(answer.code());
    }
    let last = tokio::time::timeout(BOUND, c.next_answer(false))
        .await
        .expect("an answer within the bound")
        .expect("no reset")
        .expect("the last answer");
    answers.push(last.code());
    assert_eq!(answers[0], (200, "handled".into()));
    assert!(
        answers[1..].iter().all(|a| *a == (200, "duplicate".into())),
        "{adapter:?}: {:?}",
        answers.iter().find(|a| a.0 != 200)
    );
    assert!(still_waiting(&c), "{adapter:?}: the connection was closed");
    assert_eq!(r.calls(), 1);
    eprintln!(
        "{adapter:?}: {} deliveries on one connection over {:?}",
        answers.len(),
        started.elapsed()
    );
    r.stop().await;
}
