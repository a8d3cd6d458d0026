//! The response bodies: kinde-core's short JSON answer ([`EndpointBody`]), and the layer's
//! body ([`ResponseBody`]), which is either the inner service's body untouched or such an answer.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

/// The body of kinde-core's answers: a few bytes of JSON (`{"status":"handled"}`,
/// `{"error":"invalid_signature"}`, …), with an exact size.
///
/// Its `Data` is `Bytes` and it cannot fail (`Error = Infallible`), so a
/// `Response<EndpointBody>` is an axum response as it is, and hyper serves it.
pub struct EndpointBody {
    inner: Full<Bytes>,
}

impl EndpointBody {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Self {
            inner: Full::new(bytes),
        }
    }
}

impl fmt::Debug for EndpointBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointBody")
            .field("size", &self.inner.size_hint().exact())
            .finish()
    }
}

impl Body for EndpointBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The body of [`crate::WebhookService`]'s responses: the inner service's body, untouched
    /// (not boxed, not re-framed), or kinde-core's answer ([`EndpointBody`]) on the webhook path.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Answer { body: EndpointBody },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn answer(body: EndpointBody) -> Self {
        Self {
            kind: Kind::Answer { body },
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner"),
            Kind::Answer { body } => f.debug_tuple("ResponseBody::Answer").field(body).finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Answer { body } => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Answer { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Answer { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn an_answer_has_its_exact_size_and_bytes() {
        let body = EndpointBody::new(Bytes::from_static(br#"{"status":"handled"}"#));
        assert_eq!(body.size_hint().exact(), Some(20));
        assert!(!body.is_end_stream());
        let wrapped = ResponseBody::<Full<Bytes>>::answer(body);
        assert_eq!(wrapped.size_hint().exact(), Some(20));
        let bytes = wrapped.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, r#"{"status":"handled"}"#);
    }

    #[tokio::test]
    async fn the_inner_body_passes_through() {
        let wrapped = ResponseBody::inner(Full::new(Bytes::from_static(b"inner")));
        assert_eq!(wrapped.size_hint().exact(), Some(5));
        assert_eq!(wrapped.collect().await.unwrap().to_bytes(), "inner");
    }
}
