//! Reading the request payload chunk by chunk, never past kinde-core's limit.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};

/// Why the body was not read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The next chunk would take the body past the limit.
    TooLarge,
    /// The payload stream failed (the client went away mid-upload, a bad chunk encoding, …).
    Failed,
}

/// Collects `payload` while it stays within `limit` bytes. Stops at the first chunk that would
/// pass the limit: an oversized (or endless) upload is refused without being buffered whole.
pub(crate) async fn read_limited<S, E>(mut payload: S, limit: usize) -> Result<Bytes, ReadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ReadError::Failed)?;
        if chunk.len() > limit - buf.len() {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, ()>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[actix_web::test]
    async fn up_to_the_limit_is_read_whole() {
        let body = read_limited(chunks(&[b"ab", b"", b"cd"]), 4).await.unwrap();
        assert_eq!(body, "abcd");
        assert_eq!(read_limited(chunks(&[]), 4).await.unwrap(), "");
    }

    #[actix_web::test]
    async fn one_byte_over_is_too_large() {
        let err = read_limited(chunks(&[b"ab", b"cde"]), 4).await.unwrap_err();
        assert_eq!(err, ReadError::TooLarge);
    }

    #[actix_web::test]
    async fn a_failing_stream_is_a_read_failure() {
        let s = stream::iter(vec![Ok(Bytes::from_static(b"ab")), Err(())]);
        assert_eq!(read_limited(s, 4).await.unwrap_err(), ReadError::Failed);
    }

    #[actix_web::test]
    async fn an_endless_stream_is_refused_just_past_the_limit() {
        let pulled = AtomicUsize::new(0);
        let endless = stream::repeat_with(|| {
            pulled.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(Bytes::from_static(&[b'x'; 1024]))
        });
        let err = read_limited(endless, 64 * 1024).await.unwrap_err();
        assert_eq!(err, ReadError::TooLarge);
        // 64 chunks fill the limit; the 65th is the first over it, and the last one pulled.
        assert_eq!(pulled.load(Ordering::SeqCst), 65);
    }
}
