//! The middleware's response future: the inner service's future untouched, or kinde-core's
//! answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;

pin_project! {
    /// The response future of the service made by [`crate::WebhookMiddleware`] (not exported).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Not the webhook path: the inner service's future, not boxed.
        Inner { #[pin] future: F },
        // The webhook path: reading the payload and running kinde-core.
        Webhook { future: LocalBoxFuture<'static, ServiceResponse> },
        // Answered before reading anything (405, 413).
        Ready { response: Option<ServiceResponse> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn webhook(future: impl Future<Output = ServiceResponse> + 'static) -> Self {
        Self {
            state: State::Webhook {
                future: Box::pin(future),
            },
        }
    }

    pub(crate) fn ready(response: ServiceResponse) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => {
                let resp = ready!(future.poll(cx))?;
                Poll::Ready(Ok(resp.map_into_left_body()))
            }
            StateProj::Webhook { future } => {
                let resp = ready!(future.as_mut().poll(cx));
                Poll::Ready(Ok(resp.map_into_right_body()))
            }
            StateProj::Ready { response } => {
                let resp = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(resp.map_into_right_body()))
            }
        }
    }
}
