//! The response futures: [`EndpointFuture`] (kinde-core's answer) and [`ResponseFuture`] (the
//! layer's: the inner service's future untouched, or an `EndpointFuture`).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::{EndpointBody, ResponseBody};

type Reading = Pin<Box<dyn Future<Output = Response<EndpointBody>> + Send + 'static>>;

/// The response future of [`crate::WebhookEndpoint`]: kinde-core's answer, ready at once for
/// what is refused before reading (405, a declared oversize), otherwise after reading the body
/// and handling the delivery. `Send + 'static`; never fails.
pub struct EndpointFuture {
    state: EndpointState,
}

enum EndpointState {
    Ready(Option<Response<EndpointBody>>),
    Reading(Reading),
}

impl EndpointFuture {
    pub(crate) fn ready(response: Response<EndpointBody>) -> Self {
        Self {
            state: EndpointState::Ready(Some(response)),
        }
    }

    pub(crate) fn reading(
        future: impl Future<Output = Response<EndpointBody>> + Send + 'static,
    ) -> Self {
        Self {
            state: EndpointState::Reading(Box::pin(future)),
        }
    }
}

impl fmt::Debug for EndpointFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            EndpointState::Ready(_) => "ready",
            EndpointState::Reading(_) => "reading",
        };
        f.debug_struct("EndpointFuture")
            .field("state", &state)
            .finish()
    }
}

impl Future for EndpointFuture {
    type Output = Result<Response<EndpointBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            EndpointState::Reading(future) => future.as_mut().poll(cx).map(Ok),
            EndpointState::Ready(response) => Poll::Ready(Ok(response
                .take()
                .expect("EndpointFuture polled after completion"))),
        }
    }
}

pin_project! {
    /// The response future of [`crate::WebhookService`]: the inner service's future, not
    /// boxed, for every other request; kinde-core's answer on the webhook path.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Webhook { future: EndpointFuture },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn webhook(future: EndpointFuture) -> Self {
        Self {
            state: State::Webhook { future },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Inner { .. } => f.write_str("ResponseFuture::Inner"),
            State::Webhook { future } => f
                .debug_tuple("ResponseFuture::Webhook")
                .field(future)
                .finish(),
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
                Poll::Ready(Ok(resp.map(ResponseBody::inner)))
            }
            StateProj::Webhook { future } => {
                let Ok(resp) = ready!(Pin::new(future).poll(cx));
                Poll::Ready(Ok(resp.map(ResponseBody::answer)))
            }
        }
    }
}
