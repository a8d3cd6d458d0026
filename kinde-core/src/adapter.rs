//! For adapter authors: how a framework's request becomes kinde-core's answer.
//!
//! `kinde-tower` and `kinde-actix` are thin: they route, hand the method, the headers and the
//! body stream to [`receive`], and convert the [`WebhookResponse`] into their framework's
//! response. Every status is chosen here, so every adapter answers alike:
//!
//! 1. [`precheck`]: `405` for a method other than POST, `413` for a declared `Content-Length`
//!    over the limit, `503 too_many_deliveries` when [`WebhooksBuilder::max_in_flight`]
//!    deliveries are already in flight (the permit is held until the answer is ready);
//! 2. [`Admission::receive`]: reads the body chunk by chunk, never past the limit (`413`) nor
//!    past the body deadline (`408 body_timeout`, with `Connection: close`), then
//!    [`Webhooks::handle`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use bytes::Bytes;
//! use http::{HeaderMap, Method};
//! use kinde_core::{adapter, Webhooks};
//!
//! let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
//! let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"not a token"))]);
//! let answer = adapter::receive(&webhooks, &Method::POST, &HeaderMap::new(), body).await;
//! assert_eq!(answer.status(), 400); // malformed_token
//! let answer = adapter::receive(&webhooks, &Method::GET, &HeaderMap::new(), futures_util::stream::empty::<Result<Bytes, std::io::Error>>()).await;
//! assert_eq!(answer.status(), 405);
//! # }
//! ```
//!
//! [`WebhooksBuilder::max_in_flight`]: crate::WebhooksBuilder::max_in_flight

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{header, HeaderMap, Method};
use tokio::sync::OwnedSemaphorePermit;

use crate::{Outcome, WebhookResponse, Webhooks};

/// A delivery let in by [`precheck`]: it holds one of the receiver's in-flight permits and the
/// body deadline, which started when it was admitted (the end of the request head).
#[derive(Debug)]
pub struct Admission {
    webhooks: Webhooks,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
    _permit: OwnedSemaphorePermit,
}

/// The answer before the body is read: `Err` with the response to send (405, 413, 503), or the
/// [`Admission`] to read the body under.
///
/// `Content-Length` is read here, once: a value over the limit is refused at once; an
/// unreadable one is left to the HTTP server (which refuses it before we are called).
pub fn precheck(
    webhooks: &Webhooks,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Admission, WebhookResponse> {
    if method != Method::POST {
        return Err(early(Outcome::MethodNotAllowed));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let inner = webhooks.inner();
    if declared.is_some_and(|n| n > inner.body_limit as u64) {
        return Err(early(Outcome::PayloadTooLarge));
    }
    let permit = inner
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| early(Outcome::TooManyDeliveries))?;
    Ok(Admission {
        webhooks: webhooks.clone(),
        declared,
        deadline: tokio::time::Instant::now() + inner.body_timeout,
        _permit: permit,
    })
}

/// [`precheck`], then [`Admission::receive`]: the whole delivery.
pub async fn receive<S, E>(
    webhooks: &Webhooks,
    method: &Method,
    headers: &HeaderMap,
    body: S,
) -> WebhookResponse
where
    S: Stream<Item = Result<Bytes, E>>,
{
    match precheck(webhooks, method, headers) {
        Ok(admission) => admission.receive(headers, body).await,
        Err(answer) => answer,
    }
}

impl Admission {
    /// Reads the body under the limit and the deadline, then handles the delivery.
    pub async fn receive<S, E>(self, headers: &HeaderMap, body: S) -> WebhookResponse
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        let limit = self.webhooks.body_limit();
        let read = tokio::time::timeout_at(self.deadline, read_limited(body, limit, self.declared));
        let body = match read.await {
            Ok(Ok(body)) => body,
            Ok(Err(ReadError::TooLarge)) => return early(Outcome::PayloadTooLarge),
            Ok(Err(ReadError::Failed)) => return early(Outcome::BodyReadFailed),
            Err(_elapsed) => return early(Outcome::BodyTimeout),
        };
        self.webhooks.handle(headers, &body).await
    }
}

fn early(outcome: Outcome) -> WebhookResponse {
    tracing::debug!(
        outcome = outcome.code(),
        status = outcome.status().as_u16(),
        "kinde webhook answered before handling"
    );
    WebhookResponse::new(outcome)
}

#[derive(Debug, PartialEq, Eq)]
enum ReadError {
    /// The body would pass the limit.
    TooLarge,
    /// The stream failed (the client went away mid-upload, a bad chunk encoding, …).
    Failed,
}

/// Collects `body` while it stays within `limit` bytes, stopping at the first chunk that would
/// pass it. The buffer never grows past the limit (it starts at the declared length, and grows
/// by doubling capped at the limit), so an oversized or endless upload is never buffered whole.
async fn read_limited<S, E>(
    body: S,
    limit: usize,
    declared: Option<u64>,
) -> Result<Bytes, ReadError>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let mut body = std::pin::pin!(body);
    let Some(first) = body.next().await else {
        return Ok(Bytes::new());
    };
    let first = first.map_err(|_| ReadError::Failed)?;
    if first.len() > limit {
        return Err(ReadError::TooLarge);
    }
    let Some(second) = body.next().await else {
        return Ok(first); // one chunk: no copy
    };
    let initial = declared.map_or(first.len() * 2, |n| n as usize).min(limit);
    let mut buf = Vec::with_capacity(initial.max(first.len()));
    buf.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next.take() {
        let chunk = chunk.map_err(|_| ReadError::Failed)?;
        if chunk.len() > limit - buf.len() {
            return Err(ReadError::TooLarge);
        }
        let needed = buf.len() + chunk.len();
        if needed > buf.capacity() {
            buf.reserve_exact(next_capacity(buf.capacity(), needed, limit) - buf.len());
        }
        buf.extend_from_slice(&chunk);
        next = body.next().await;
    }
    Ok(Bytes::from(buf))
}

/// The capacity to grow to: doubling, at least `needed`, never past `limit` (`needed <= limit`).
fn next_capacity(capacity: usize, needed: usize, limit: usize) -> usize {
    (capacity * 2).max(needed).min(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, ()>> {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn up_to_the_limit_is_read_whole() {
        let body = read_limited(chunks(&[b"ab", b"", b"cd"]), 4, None)
            .await
            .unwrap();
        assert_eq!(body, "abcd");
        assert_eq!(read_limited(chunks(&[]), 4, None).await.unwrap(), "");
        assert_eq!(
            read_limited(chunks(&[b"abcd"]), 4, Some(4)).await.unwrap(),
            "abcd"
        );
    }

    #[tokio::test]
    async fn one_byte_over_is_too_large() {
        let err = read_limited(chunks(&[b"ab", b"cde"]), 4, None)
            .await
            .unwrap_err();
        assert_eq!(err, ReadError::TooLarge);
        let err = read_limited(chunks(&[b"abcde"]), 4, None)
            .await
            .unwrap_err();
        assert_eq!(err, ReadError::TooLarge);
    }

    #[tokio::test]
    async fn a_failing_stream_is_a_read_failure() {
        let s = stream::iter(vec![Ok(Bytes::from_static(b"ab")), Err(())]);
        assert_eq!(
            read_limited(s, 4, None).await.unwrap_err(),
            ReadError::Failed
        );
    }

    #[tokio::test]
    async fn an_endless_stream_is_refused_just_past_the_limit_and_never_buffered_past_it() {
        let pulled = AtomicUsize::new(0);
        let endless = stream::repeat_with(|| {
            pulled.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(Bytes::from_static(&[b'x'; 1024]))
        });
        let err = read_limited(endless, 64 * 1024, None).await.unwrap_err();
        assert_eq!(err, ReadError::TooLarge);
        // 64 chunks fill the limit; the 65th is the first over it, and the last one pulled.
        assert_eq!(pulled.load(Ordering::SeqCst), 65);
    }

    #[test]
    fn the_buffer_never_grows_past_the_limit() {
        assert_eq!(next_capacity(80, 120, 100), 100); // doubling would give 160
        assert_eq!(next_capacity(10, 11, 100), 20);
        assert_eq!(next_capacity(10, 50, 100), 50);
        for cap in 1..200 {
            for needed in cap..=200 {
                assert!(next_capacity(cap, needed, 200) <= 200);
                assert!(next_capacity(cap, needed, 200) >= needed);
            }
        }
    }
}
