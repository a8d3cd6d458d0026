//! The handler map: one async handler per event type, plus an optional fallback.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;

use crate::event::{Event, KindeEvent, WebhookEvent};

/// The error type handlers return: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A type-erased handler as stored in the map.
pub(crate) type ErasedHandler =
    Arc<dyn Fn(WebhookEvent) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// Why a handler map could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerMapError {
    /// Two handlers for one type. With release-on-failure a retry would run the first one
    /// again whenever the second failed: compose inside one handler instead.
    #[error("a handler for `{0}` is already registered: register one handler per type and compose inside it")]
    DuplicateHandler(String),
    /// A second fallback.
    #[error("a fallback handler is already registered")]
    DuplicateFallback,
}

/// Maps event types to handlers. Built through [`crate::WebhooksBuilder`]'s `on*` methods.
#[derive(Clone, Default)]
pub struct HandlerMap {
    by_type: HashMap<String, ErasedHandler>,
    fallback: Option<ErasedHandler>,
    error: Option<HandlerMapError>,
}

impl std::fmt::Debug for HandlerMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<_> = self.by_type.keys().collect();
        types.sort();
        f.debug_struct("HandlerMap")
            .field("types", &types)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl HandlerMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, event_type: String, handler: ErasedHandler) {
        match self.by_type.entry(event_type) {
            Entry::Occupied(e) => {
                self.error
                    .get_or_insert(HandlerMapError::DuplicateHandler(e.key().clone()));
            }
            Entry::Vacant(v) => {
                v.insert(handler);
            }
        }
    }

    /// Registers a typed handler for `T`'s event type.
    pub fn on<T, F, Fut, E>(&mut self, handler: F)
    where
        T: KindeEvent,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let erased: ErasedHandler = Arc::new(move |event: WebhookEvent| {
            let WebhookEvent { meta, payload } = event;
            match T::from_payload(payload) {
                Some(data) => handler(Event { meta, data })
                    .map(|r| r.map_err(Into::into))
                    .boxed(),
                None => futures_util::future::ready(Err::<(), BoxError>(
                    format!("payload is not a {}", T::TYPE).into(),
                ))
                .boxed(),
            }
        });
        self.insert(T::TYPE.to_owned(), erased);
    }

    /// Registers a handler for a type string; it receives the whole event (for a documented type
    /// the payload is still its typed arm; for any other, [`crate::event::EventPayload::Unknown`]).
    pub fn on_type<F, Fut, E>(&mut self, event_type: impl Into<String>, handler: F)
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.insert(event_type.into(), erase(handler));
    }

    /// Registers the handler for every type without one of its own.
    pub fn fallback<F, Fut, E>(&mut self, handler: F)
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        if self.fallback.is_some() {
            self.error.get_or_insert(HandlerMapError::DuplicateFallback);
        } else {
            self.fallback = Some(erase(handler));
        }
    }

    /// The first registration error, if any.
    pub(crate) fn validate(&self) -> Result<(), HandlerMapError> {
        self.error.clone().map_or(Ok(()), Err)
    }

    /// The handler for a type: its own, else the fallback.
    pub(crate) fn get(&self, event_type: &str) -> Option<&ErasedHandler> {
        self.by_type.get(event_type).or(self.fallback.as_ref())
    }
}

fn erase<F, Fut, E>(handler: F) -> ErasedHandler
where
    F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    Arc::new(move |event| handler(event).map(|r| r.map_err(Into::into)).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventMeta, EventPayload, UserDeleted, UserRef};

    fn event(payload: EventPayload) -> WebhookEvent {
        WebhookEvent::new(
            EventMeta {
                event_id: "event_1".into(),
                event_type: payload.event_type().into(),
                source: None,
                timestamp: time::OffsetDateTime::UNIX_EPOCH,
                event_timestamp: None,
                ip_address: None,
                webhook_id: None,
            },
            payload,
        )
    }

    #[tokio::test]
    async fn routes_typed_then_fallback() {
        let mut map = HandlerMap::new();
        map.on(|e: Event<UserDeleted>| async move {
            assert_eq!(e.data.user.id, "kp_9");
            Ok::<_, BoxError>(())
        });
        map.fallback(|e: WebhookEvent| async move {
            Err::<(), BoxError>(format!("fallback {}", e.meta.event_type).into())
        });
        map.validate().unwrap();
        let typed = event(UserDeleted::new(UserRef { id: "kp_9".into() }).into_payload());
        map.get("user.deleted").unwrap()(typed).await.unwrap();
        let err = map.get("role.deleted").unwrap()(typed_unknown())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "fallback passkey.added");
    }

    fn typed_unknown() -> WebhookEvent {
        event(EventPayload::Unknown(crate::event::UnknownEvent {
            event_type: "passkey.added".into(),
            data: serde_json::json!({}),
        }))
    }

    #[test]
    fn no_handler_and_no_fallback_is_none() {
        let mut map = HandlerMap::new();
        map.on(|_: Event<UserDeleted>| async { Ok::<_, BoxError>(()) });
        assert!(map.get("user.created").is_none());
    }

    #[test]
    fn a_second_handler_for_a_type_is_refused() {
        let mut map = HandlerMap::new();
        map.on(|_: Event<UserDeleted>| async { Ok::<_, BoxError>(()) });
        map.on_type("user.deleted", |_| async { Ok::<_, BoxError>(()) });
        assert_eq!(
            map.validate(),
            Err(HandlerMapError::DuplicateHandler("user.deleted".into()))
        );
        let mut map = HandlerMap::new();
        map.fallback(|_| async { Ok::<_, BoxError>(()) });
        map.fallback(|_| async { Ok::<_, BoxError>(()) });
        assert_eq!(map.validate(), Err(HandlerMapError::DuplicateFallback));
    }
}
