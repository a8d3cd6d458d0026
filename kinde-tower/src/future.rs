use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

use crate::ResponseBody;

type WebhookFuture = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send + 'static>>;

pin_project! {
    /// The response future of [`crate::KindeWebhookService`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Not the webhook path: the inner service's future.
        Inner { #[pin] future: F },
        // The webhook path: reading the body and running kinde-core.
        Webhook { future: WebhookFuture },
        // Answered before reading anything (405, 413).
        Ready { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn webhook(
        future: impl Future<Output = Response<Full<Bytes>>> + Send + 'static,
    ) -> Self {
        Self {
            state: State::Webhook {
                future: Box::pin(future),
            },
        }
    }

    pub(crate) fn ready(response: Response<Full<Bytes>>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => {
                let resp = ready!(future.poll(cx))?;
                Poll::Ready(Ok(resp.map(Either::Left)))
            }
            StateProj::Webhook { future } => {
                let resp = ready!(future.as_mut().poll(cx));
                Poll::Ready(Ok(resp.map(Either::Right)))
            }
            StateProj::Ready { response } => {
                let resp = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(resp.map(Either::Right)))
            }
        }
    }
}
