//! Handlers: the code that runs for a verified, new event.
//!
//! A handler is an `async fn` or a closure returning a future, taking the event — and, when the
//! receiver was given application state with [`WebhooksBuilder::state`], a [`State`] first, the
//! way axum handlers do:
//!
//! ```
//! use kinde_core::event::{Event, UserCreated, UserDeleted};
//! use kinde_core::handler::State;
//! use kinde_core::Webhooks;
//!
//! #[derive(Clone)]
//! struct Db; // e.g. a connection pool
//! impl Db {
//!     async fn upsert(&self, _id: &str) -> Result<(), std::io::Error> { Ok(()) }
//! }
//!
//! async fn created(State(db): State<Db>, e: Event<UserCreated>) -> Result<(), std::io::Error> {
//!     db.upsert(&e.data.user.id).await // an Err answers 500: Kinde retries
//! }
//!
//! let webhooks = Webhooks::builder()
//!     .issuer("acme.kinde.com")
//!     .state(Db)
//!     .on(created)
//!     .on(|e: Event<UserDeleted>| async move { println!("bye {}", e.data.user.id) })
//!     .fallback(async |e: Event| -> Result<(), String> {
//!         println!("{} {}", e.meta.event_type, e.data);
//!         Ok(())
//!     })
//!     .build()
//!     .unwrap();
//! # let _ = webhooks;
//! ```
//!
//! A handler returns `()` (it cannot fail) or `Result<(), E>` for any `E: Display` — your own
//! error type, `std::io::Error`, `Box<dyn Error>`, `Box<dyn Error + Send + Sync>`,
//! `anyhow::Error`, a `String`. An `Err`, a panic (in the handler's synchronous part or in its
//! future) or a timeout answers `500 handler_failed` and releases the claim, so Kinde's retry runs
//! the handler again; the error is logged with its alternate form (`{:#}`, which prints an
//! `anyhow` chain).
//!
//! Panics are caught with `catch_unwind`, so this holds in builds with `panic = "unwind"` (the
//! default). With `panic = "abort"`, or a panic inside a destructor while unwinding, the process
//! aborts, as in all Rust.
//!
//! [`WebhooksBuilder::state`]: crate::WebhooksBuilder::state

mod map;

pub(crate) use map::{ErasedHandler, HandlerMap, Handlers, Invocation};

use std::fmt::Display;
use std::future::Future;

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;

use crate::event::Event;

/// Any error, boxed: a convenient error type for handlers, which may return
/// `Result<(), BoxError>` and use `?` on any error inside (a handler's error only needs
/// `Display`; its message is logged and the delivery answered `500 handler_failed`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Application state for handlers: give it once with
/// [`WebhooksBuilder::state`](crate::WebhooksBuilder::state), take it as a first argument
/// (`State(pool): State<Pool>`). Each call gets a clone (wrap what is expensive to clone in an
/// `Arc`; pools usually are one already).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State<S>(pub S);

/// What a handler returns: `()` or `Result<(), E>` with `E: Display`.
#[diagnostic::on_unimplemented(
    message = "a Kinde webhook handler must return `()` or `Result<(), E>` where `E: Display`, not `{Self}`",
    label = "the handler's future resolves to this",
    note = "an `Err` (or a panic) answers 500 and Kinde retries; return `Ok(())` when the event was handled"
)]
pub trait HandlerOutput: Send {
    /// `Ok(())`, or the error's message.
    #[doc(hidden)]
    fn into_outcome(self) -> Result<(), String>;
}

impl HandlerOutput for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> HandlerOutput for Result<(), E>
where
    Result<(), E>: Send,
{
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:#}"))
    }
}

/// The future a type-erased handler call returns.
pub(crate) type HandlerFuture = BoxFuture<'static, Result<(), String>>;

/// The marker for handlers taking only the event.
#[doc(hidden)]
#[derive(Debug)]
pub enum EventOnly {}

/// The marker for handlers taking the state and the event.
#[doc(hidden)]
#[derive(Debug)]
pub enum WithState {}

/// A webhook handler for events whose data is `T`, in a receiver whose state is `S`.
///
/// Implemented for every `Fn(Event<T>) -> Future` and `Fn(State<S>, Event<T>) -> Future` whose
/// future is `Send + 'static` and resolves to a [`HandlerOutput`]; you do not implement it
/// yourself. `M` only tells the two shapes apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Kinde webhook handler for `Event<{T}>`",
    label = "not a handler for this event",
    note = "a handler is an `async fn` or closure taking `Event<T>`, or `(State<S>, Event<T>)` after `.state(..)`; it returns `()` or `Result<(), E>` with `E: Display`",
    note = "its future must be `Send + 'static`: move what it needs into it (`async move`), or take it from `State`"
)]
pub trait Handler<T, S, M>: Send + Sync + 'static {
    /// Starts the handler.
    #[doc(hidden)]
    fn call(&self, state: &S, event: Event<T>) -> HandlerFuture;
}

impl<F, Fut, T, S> Handler<T, S, EventOnly> for F
where
    F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    fn call(&self, _state: &S, event: Event<T>) -> HandlerFuture {
        self(event).map(HandlerOutput::into_outcome).boxed()
    }
}

impl<F, Fut, T, S> Handler<T, S, WithState> for F
where
    F: Fn(State<S>, Event<T>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
    S: Clone,
{
    fn call(&self, state: &S, event: Event<T>) -> HandlerFuture {
        self(State(state.clone()), event)
            .map(HandlerOutput::into_outcome)
            .boxed()
    }
}
