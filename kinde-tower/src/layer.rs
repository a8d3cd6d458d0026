use kinde_core::Webhooks;
use tower_layer::Layer;

use crate::KindeWebhookService;

/// Wraps a service so that Kinde webhook deliveries on [`Webhooks::path`] are answered by
/// kinde-core and everything else reaches the service.
#[derive(Debug, Clone)]
pub struct KindeWebhookLayer {
    webhooks: Webhooks,
}

impl KindeWebhookLayer {
    /// A layer answering deliveries with this receiver (build it once; clones share it).
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }
}

impl<S> Layer<S> for KindeWebhookLayer {
    type Service = KindeWebhookService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KindeWebhookService::new(inner, self.webhooks.clone())
    }
}
