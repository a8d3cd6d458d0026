//! The `kinde_webhook` span the README promises: one per delivery, at INFO, with its fields;
//! the per-delivery events inside it at DEBUG, so an app logging at INFO writes nothing per
//! accepted (or forged) delivery.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kinde_core::testing::http::HeaderMap;
use kinde_core::testing::{TestEvent, TestIssuer};
use kinde_core::{Event, Webhooks};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Debug, Clone, Default)]
struct SpanSeen {
    name: String,
    level: Option<Level>,
    fields: BTreeMap<String, String>,
    /// Levels and messages of the events recorded inside the span.
    events: Vec<(Level, String)>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<SpanSeen>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut seen = SpanSeen {
            name: attrs.metadata().name().to_owned(),
            level: Some(*attrs.metadata().level()),
            ..SpanSeen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        ctx.span(id).unwrap().extensions_mut().insert(seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut ext = span.extensions_mut();
        let seen = ext.get_mut::<SpanSeen>().unwrap();
        values.record(&mut Fields(&mut seen.fields));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.event_span(event) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            let message = fields.remove("message").unwrap_or_default();
            if let Some(seen) = span.extensions_mut().get_mut::<SpanSeen>() {
                seen.events.push((*event.metadata().level(), message));
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let seen = span.extensions_mut().remove::<SpanSeen>();
        if let Some(seen) = seen {
            self.0.lock().unwrap().push(seen);
        }
    }
}

async fn deliveries() -> String {
    let issuer = TestIssuer::new();
    let url = issuer.serve().await.url();
    let webhooks = Webhooks::builder()
        .issuer(url)
        .on_type("user.created", |_: Event| async {})
        .build()
        .unwrap();
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", "msg_1".parse().unwrap());
    assert_eq!(
        webhooks.handle(&headers, token.as_bytes()).await.status(),
        200
    );
    let forged = issuer.forge(&TestEvent::sample("user.created").into_claims());
    assert_eq!(
        webhooks
            .handle(&HeaderMap::new(), forged.as_bytes())
            .await
            .status(),
        401
    );
    id
}

#[tokio::test]
async fn every_delivery_gets_a_kinde_webhook_span_with_its_fields() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let id = deliveries().await;

    let spans: Vec<SpanSeen> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.name == "kinde_webhook")
        .cloned()
        .collect();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let handled = &spans[0];
    assert_eq!(handled.level, Some(Level::INFO));
    let f = &handled.fields;
    assert_eq!(f["event_id"], id);
    assert_eq!(f["event_type"], "user.created");
    assert_eq!(f["webhook_id"], "msg_1");
    assert_eq!(f["outcome"], "handled");
    assert_eq!(f["status"], "200");
    assert!(f["latency_us"].parse::<u64>().is_ok(), "{f:?}");
    assert!(
        handled.events.iter().all(|(l, _)| *l == Level::DEBUG),
        "per-delivery events are DEBUG: {:?}",
        handled.events
    );
    assert!(!handled.events.is_empty());

    let forged = &spans[1];
    assert_eq!(forged.fields["outcome"], "invalid_signature");
    assert_eq!(forged.fields["status"], "401");
    assert!(!forged.fields.contains_key("event_id"), "unverified: no id");
    assert!(forged.events.iter().all(|(l, _)| *l == Level::DEBUG));
}

#[tokio::test]
async fn an_app_logging_at_info_writes_nothing_per_delivery() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    deliveries().await;
    let spans = capture.0.lock().unwrap().clone();
    let webhook: Vec<_> = spans.iter().filter(|s| s.name == "kinde_webhook").collect();
    assert_eq!(webhook.len(), 2, "the span is INFO: {spans:#?}");
    for s in webhook {
        assert!(s.events.is_empty(), "{:?}", s.events);
    }
}
