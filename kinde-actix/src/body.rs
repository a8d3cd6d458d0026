//! The answer's body, holding the request payload until the answer is written.
//!
//! actix-web decides after writing a response whether the connection can serve another
//! request. A request payload not read to its end normally closes it — but a *chunked* one
//! whose payload stream was dropped is drained instead, for as long as the client keeps
//! sending: a trickled chunked upload answered `408 body_timeout` (or a stalled one answered
//! `503 too_many_deliveries`) would hold its connection forever. Keeping the payload stream
//! alive until the last byte of the answer is written makes actix-web see an unread payload
//! and close. A payload read to its end changes nothing: the connection is kept alive as
//! usual.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::Payload;
use actix_web::HttpResponse;
use bytes::Bytes;

/// `resp`, with `payload` kept alive until its body has been written.
pub(crate) fn hold_until_sent(resp: HttpResponse, payload: Payload) -> HttpResponse {
    resp.map_body(|_, body| {
        BoxBody::new(Holding {
            body,
            _payload: payload,
        })
    })
}

struct Holding {
    body: BoxBody,
    /// Dropped with the body, once the answer is written.
    _payload: Payload,
}

impl MessageBody for Holding {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn the_answer_is_unchanged() {
        let resp = HttpResponse::Ok().body(r#"{"status":"handled"}"#);
        let resp = hold_until_sent(resp, Payload::None);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.body().size(), BodySize::Sized(20));
        let bytes = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
        assert_eq!(bytes, r#"{"status":"handled"}"#);
    }
}
