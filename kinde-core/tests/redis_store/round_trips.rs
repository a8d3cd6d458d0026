//! The commands a delivery sends to Redis, counted by a TCP proxy on 127.0.0.1 between the
//! store and the real single server: two per delivery (the claim and the completion, each one
//! `EVALSHA`), one for a duplicate or a superseded event, three when a failure parks.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use kinde_core::EntityOrdering;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::redis_common::{self, answer, deliver, Counter};
use kinde_core::testing::{TestEvent, TestIssuer};

/// The names of the commands sent through the proxy, in order.
type Sent = Arc<Mutex<Vec<String>>>;

/// Parses the complete RESP commands (`*<n>` arrays of `$<len>` bulk strings) at the start of
/// `buf`: their names, and how many bytes they took.
fn commands(buf: &[u8]) -> (Vec<String>, usize) {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    fn number(bytes: &[u8]) -> Option<usize> {
        std::str::from_utf8(bytes).ok()?.parse().ok()
    }
    let (mut names, mut done) = (Vec::new(), 0);
    'next: loop {
        let mut at = done;
        let Some((head, after)) = line(buf, at) else {
            break;
        };
        let Some(n) = head.strip_prefix(b"*").and_then(number) else {
            break;
        };
        at = after;
        let mut name = None;
        for _ in 0..n {
            let Some((head, after)) = line(buf, at) else {
                break 'next;
            };
            let Some(len) = head.strip_prefix(b"$").and_then(number) else {
                break 'next;
            };
            if buf.len() < after + len + 2 {
                break 'next;
            }
            name.get_or_insert_with(|| {
                String::from_utf8_lossy(&buf[after..after + len]).to_uppercase()
            });
            at = after + len + 2;
        }
        names.push(name.unwrap_or_default());
        done = at;
    }
    (names, done)
}

/// A proxy to `upstream` (host:port) that records the commands going through; its URL.
async fn counting_proxy(upstream: String, sent: Sent) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, sent) = (upstream.clone(), sent.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let replies = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let mut pending = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                while let Ok(n) = cr.read(&mut chunk).await {
                    if n == 0 || sw.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    pending.extend_from_slice(&chunk[..n]);
                    let (names, used) = commands(&pending);
                    pending.drain(..used);
                    sent.lock().unwrap().extend(names);
                }
                replies.abort();
            });
        }
    });
    url
}

#[test]
fn the_proxy_parses_commands_split_anywhere() {
    let two = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
    assert_eq!(
        commands(two),
        (vec!["GET".into(), "PING".into()], two.len())
    );
    for cut in 0..two.len() {
        let (names, used) = commands(&two[..cut]);
        assert!(used <= cut && names.len() <= 2);
        let (rest, more) = commands(&two[used..]);
        assert_eq!(names.len() + rest.len(), 2, "cut at {cut}");
        assert_eq!(used + more, two.len());
    }
}

#[tokio::test]
async fn a_delivery_is_two_round_trips_one_script_each() {
    let Some(redis) = redis_common::single().await else {
        return;
    };
    let sent = Sent::default();
    let upstream = redis.url.trim_start_matches("redis://").to_owned();
    let url = counting_proxy(upstream, sent.clone()).await;
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    let store = redis_common::store(&url, &redis_common::unique_prefix());
    let webhooks = redis_common::receiver(jwks.url(), store, &counter, |b| {
        b.ordering(EntityOrdering::latest_wins()).park_after(1)
    });
    let at = |minutes: i64| time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes);
    let user = |id: &str, minutes| {
        issuer.sign(
            &TestEvent::raw(
                "user.created",
                serde_json::json!({"user": {"id": id, "email": "a@b.c"}}),
            )
            .timestamp(at(minutes))
            .into_claims(),
        )
    };
    // Warm up: the connection's set-up and the scripts' first loads are not per delivery.
    assert_eq!(
        answer(&deliver(&webhooks, &user("kp_w", 1)).await),
        (200, "handled")
    );
    counter.fail_next.store(1, Ordering::SeqCst);
    let warm = deliver(&webhooks, &user("kp_w2", 1)).await;
    assert_eq!(answer(&warm), (200, "parked"));
    sent.lock().unwrap().clear();

    let count = |expected: usize, what: &str| {
        let names = std::mem::take(&mut *sent.lock().unwrap());
        assert_eq!(names.len(), expected, "{what}: {names:?}");
        assert!(names.iter().all(|n| n == "EVALSHA"), "{what}: {names:?}");
    };
    for i in 0..10 {
        let token = user(&format!("kp_{i}"), 5);
        assert_eq!(answer(&deliver(&webhooks, &token).await), (200, "handled"));
        count(2, "a new event");
        assert_eq!(
            answer(&deliver(&webhooks, &token).await),
            (200, "duplicate")
        );
        count(1, "a duplicate");
    }
    let late = user("kp_0", 9);
    assert_eq!(
        answer(&deliver(&webhooks, &late).await),
        (200, "superseded")
    );
    count(1, "a superseded event");
    counter.fail_next.store(1, Ordering::SeqCst);
    let poison = user("kp_p", 1);
    assert_eq!(answer(&deliver(&webhooks, &poison).await), (200, "parked"));
    count(4, "a parking failure (claim, count, park, settle)");
    assert_eq!(answer(&deliver(&webhooks, &poison).await), (200, "parked"));
    count(1, "a parked event's retry");
}
