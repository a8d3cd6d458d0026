//! [`WebhookLayer`]: wraps a whole service and intercepts one path.

use kinde_core::Webhooks;
use tower_layer::Layer;

use crate::WebhookService;

/// Wraps a service so that requests for [`Webhooks::path`] (default `/kinde/webhook`) are
/// answered by kinde-core, and every other request reaches the service untouched.
///
/// For tonic, bare hyper, or wrapping a whole app from outside. **With an axum router, prefer
/// [`crate::WebhookEndpoint`] and `route_service`**: a layer only sees what reaches it, and
/// in axum that depends on where it is placed. It must be the outermost piece:
///
/// - axum: the **last** `.layer(..)` on the **outermost** router — after `.fallback(..)`,
///   `.nest(..)` and `.merge(..)`. `Router::layer` wraps only the routes and the fallback that
///   exist when it is called, so a layer placed before `.fallback(..)` never sees the
///   fallback's requests (the fallback answers the webhook path: every delivery lost). Never
///   `route_layer` (it runs only for requests a route matched), never on a nested or merged
///   router (its layers wrap only its own routes);
/// - tonic: `Server::builder().accept_http1(true).layer(WebhookLayer::new(webhooks))`. Kinde
///   POSTs over HTTP/1.1, and tonic's server speaks only HTTP/2 without `accept_http1(true)`:
///   the connection fails before any layer runs, and nothing is logged;
/// - hyper: around the service handed to `serve_connection` (see the crate docs).
///
/// The path compared is the one the layer is handed (`req.uri().path()`), exactly: at the top of
/// an app that is the full request path. Prove the placement in a test with
/// `kinde_tower::testing::assert_mounted` (feature `testing`).
///
/// ```
/// use kinde_core::Webhooks;
/// use kinde_tower::WebhookLayer;
/// use tower::ServiceBuilder;
///
/// let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
/// let app = tower::service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("the app")))
/// });
/// // Outermost: every request passes the layer first.
/// let svc = ServiceBuilder::new()
///     .layer(WebhookLayer::new(webhooks))
///     .service(app);
/// ```
#[derive(Debug, Clone)]
pub struct WebhookLayer {
    webhooks: Webhooks,
}

impl WebhookLayer {
    /// A layer answering deliveries with this receiver (build it once; clones share it).
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }
}

impl<S> Layer<S> for WebhookLayer {
    type Service = WebhookService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebhookService::new(inner, self.webhooks.clone())
    }
}
