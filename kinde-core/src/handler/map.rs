//! The handler map: one handler per event type, plus an optional fallback.
//!
//! While the builder runs, each registration is kept as a factory waiting for the receiver's
//! state; `build` turns them into type-erased handlers that own a clone of the state.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::{Handler, HandlerFuture};
use crate::event::{Event, EventMeta, KindeEvent};
use crate::BuildError;

/// What starting a handler gave.
pub(crate) enum Invocation {
    /// The handler's future, to be run.
    Started(HandlerFuture),
    /// The raw `data` does not match the typed handler's schema.
    Unparseable(serde_json::Error),
    /// The handler panicked before returning its future.
    Panicked,
}

/// A handler with its state: parses the raw `data` for its type, then starts the user's code.
pub(crate) type ErasedHandler = Arc<dyn Fn(EventMeta, &RawValue) -> Invocation + Send + Sync>;

type Factory<S> = Box<dyn FnOnce(&S) -> ErasedHandler + Send>;

/// The registrations of a builder whose state is `S`.
pub(crate) struct HandlerMap<S> {
    by_type: HashMap<String, Factory<S>>,
    fallback: Option<Factory<S>>,
    error: Option<BuildError>,
}

impl<S> Default for HandlerMap<S> {
    fn default() -> Self {
        Self {
            by_type: HashMap::new(),
            fallback: None,
            error: None,
        }
    }
}

fn erase<T, S, M, H>(handler: H, state: &S) -> ErasedHandler
where
    T: DeserializeOwned + 'static,
    S: Clone + Send + Sync + 'static,
    H: Handler<T, S, M>,
{
    let state = state.clone();
    Arc::new(move |meta, raw| {
        let data = match serde_json::from_str::<T>(raw.get()) {
            Ok(data) => data,
            Err(e) => return Invocation::Unparseable(e),
        };
        let event = Event { meta, data };
        // The synchronous part of the handler (before its first `.await`) runs here.
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(&state, event))) {
            Ok(future) => Invocation::Started(future),
            Err(_) => Invocation::Panicked,
        }
    })
}

impl<S: Clone + Send + Sync + 'static> HandlerMap<S> {
    fn insert(&mut self, event_type: String, factory: Factory<S>) {
        match self.by_type.entry(event_type) {
            Entry::Occupied(e) => {
                self.error
                    .get_or_insert(BuildError::DuplicateHandler(e.key().clone()));
            }
            Entry::Vacant(v) => {
                v.insert(factory);
            }
        }
    }

    /// A typed handler for `T`'s event type.
    pub(crate) fn on<T: KindeEvent, M: 'static, H: Handler<T, S, M>>(&mut self, handler: H) {
        self.insert(
            T::TYPE.to_owned(),
            Box::new(move |state| erase::<T, S, M, H>(handler, state)),
        );
    }

    /// An untyped handler for a type string.
    pub(crate) fn on_type<M: 'static, H: Handler<serde_json::Value, S, M>>(
        &mut self,
        event_type: String,
        handler: H,
    ) {
        self.insert(
            event_type,
            Box::new(move |state| erase::<serde_json::Value, S, M, H>(handler, state)),
        );
    }

    /// The untyped handler for every type without its own.
    pub(crate) fn fallback<M: 'static, H: Handler<serde_json::Value, S, M>>(&mut self, handler: H) {
        if self.fallback.is_some() {
            self.error.get_or_insert(BuildError::DuplicateFallback);
        } else {
            self.fallback = Some(Box::new(move |state| {
                erase::<serde_json::Value, S, M, H>(handler, state)
            }));
        }
    }

    /// The same registrations in a builder whose state is `S2` (only ever from `()`: handlers
    /// registered before the state was given do not take it).
    pub(crate) fn with_state<S2>(self, old: S) -> HandlerMap<S2>
    where
        S: 'static,
    {
        let old = Arc::new(old);
        let convert = |f: Factory<S>| -> Factory<S2> {
            let old = old.clone();
            Box::new(move |_: &S2| f(&old))
        };
        HandlerMap {
            by_type: self
                .by_type
                .into_iter()
                .map(|(k, f)| (k, convert(f)))
                .collect(),
            fallback: self.fallback.map(convert),
            error: self.error,
        }
    }

    /// Checks the registrations and gives each handler the state.
    pub(crate) fn build(self, state: &S) -> Result<Handlers, BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        Ok(Handlers {
            by_type: self
                .by_type
                .into_iter()
                .map(|(k, f)| (k, f(state)))
                .collect(),
            fallback: self.fallback.map(|f| f(state)),
        })
    }
}

/// The built handlers of a receiver.
#[derive(Clone)]
pub(crate) struct Handlers {
    by_type: HashMap<String, ErasedHandler>,
    fallback: Option<ErasedHandler>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<_> = self.by_type.keys().collect();
        types.sort();
        f.debug_struct("Handlers")
            .field("types", &types)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Handlers {
    /// The handler for a type: its own, else the fallback.
    pub(crate) fn get(&self, event_type: &str) -> Option<&ErasedHandler> {
        self.by_type.get(event_type).or(self.fallback.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, UserDeleted};
    use crate::handler::State;

    fn meta(ty: &str) -> EventMeta {
        EventMeta::new(
            EventId::new("event_1").unwrap(),
            ty,
            time::OffsetDateTime::UNIX_EPOCH,
        )
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    async fn run(h: &ErasedHandler, ty: &str, data: &str) -> Result<(), String> {
        match h(meta(ty), &raw(data)) {
            Invocation::Started(f) => f.await,
            Invocation::Unparseable(e) => Err(format!("unparseable: {e}")),
            Invocation::Panicked => Err("panicked".into()),
        }
    }

    #[tokio::test]
    async fn routes_typed_then_fallback_with_state() {
        let mut map = HandlerMap::<()>::default();
        map.on(|e: Event<UserDeleted>| async move {
            assert_eq!(e.data.user.id, "kp_9");
        });
        let mut map = map.with_state::<String>(());
        map.fallback(|State(db): State<String>, e: Event| async move {
            Err::<(), _>(format!("fallback {} {} {}", db, e.meta.event_type, e.data))
        });
        let handlers = map.build(&"db".to_owned()).unwrap();
        let typed = handlers.get("user.deleted").unwrap();
        run(typed, "user.deleted", r#"{"user":{"id":"kp_9"}}"#)
            .await
            .unwrap();
        let fallback = handlers.get("passkey.added").unwrap();
        assert_eq!(
            run(fallback, "passkey.added", "[1]").await.unwrap_err(),
            "fallback db passkey.added [1]"
        );
        // A typed handler whose data does not match is unparseable, never run.
        assert!(run(typed, "user.deleted", r#"{"user":{}}"#)
            .await
            .unwrap_err()
            .starts_with("unparseable"));
    }

    #[tokio::test]
    async fn a_panic_before_the_future_is_caught() {
        let mut map = HandlerMap::<()>::default();
        map.on_type("x.y".into(), |_: Event| -> std::future::Ready<()> {
            panic!("before the future")
        });
        let handlers = map.build(&()).unwrap();
        assert_eq!(
            run(handlers.get("x.y").unwrap(), "x.y", "{}").await,
            Err("panicked".into())
        );
    }

    #[test]
    fn no_handler_and_no_fallback_is_none() {
        let mut map = HandlerMap::<()>::default();
        map.on(|_: Event<UserDeleted>| async {});
        assert!(map.build(&()).unwrap().get("user.created").is_none());
    }

    #[test]
    fn a_second_handler_for_a_type_is_refused() {
        let mut map = HandlerMap::<()>::default();
        map.on(|_: Event<UserDeleted>| async {});
        map.on_type("user.deleted".into(), |_: Event| async {});
        assert!(matches!(
            map.build(&()).unwrap_err(),
            BuildError::DuplicateHandler(t) if t == "user.deleted"
        ));
        let mut map = HandlerMap::<()>::default();
        map.fallback(|_: Event| async {});
        map.fallback(|_: Event| async {});
        assert!(matches!(
            map.build(&()).unwrap_err(),
            BuildError::DuplicateFallback
        ));
    }
}
