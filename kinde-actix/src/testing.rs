//! The mount proof for actix-web apps (feature `testing`): is the webhook really answered at
//! the path Kinde will POST to, through the whole `App` as it is assembled?
//!
//! ```
//! # #[actix_web::main] async fn main() {
//! use actix_web::{web, App, HttpResponse};
//! use kinde_actix::{testing::assert_mounted, WebhookEndpoint};
//! use kinde_core::Webhooks;
//!
//! let webhooks = Webhooks::builder().issuer("acme.kinde.com").build().unwrap();
//! let app = App::new()
//!     .service(web::resource("/kinde/webhook").to(WebhookEndpoint::new(webhooks)))
//!     .default_service(web::to(HttpResponse::NotFound));
//! assert_mounted(app, "/kinde/webhook").await; // panics, saying what answered instead
//! # }
//! ```
//!
//! Build the `App` the way the server's factory does (a function returning it serves both).
//! The probe is a POST of a malformed token (see [`kinde_core::testing::MountProbe`]): it is
//! refused before any key, store or handler is involved. It goes through the app in process
//! (`actix_web::test::init_service`), with no socket; run it inside `#[actix_web::test]`.
//!
//! # Signed deliveries
//!
//! [`delivery`] (or [`IntoTestRequest::into_test_request`] on kinde-core's
//! [`Delivery`]) makes the request Kinde would send as an
//! actix-web [`TestRequest`], to drive the whole `App` in a test:
//!
//! ```
//! # #[actix_web::main] async fn main() {
//! use actix_web::{test, web, App};
//! use kinde_actix::testing::{delivery, IntoTestRequest as _};
//! use kinde_actix::WebhookEndpoint;
//! use kinde_core::event::{Event, UserCreated};
//! use kinde_core::testing::{TestEvent, TestIssuer};
//! use kinde_core::Webhooks;
//!
//! let issuer = TestIssuer::new();
//! let jwks = issuer.serve().await; // serves as long as `issuer` lives
//! let webhooks = Webhooks::builder()
//!     .issuer(jwks.url())
//!     .on(async |e: Event<UserCreated>| assert_eq!(e.data.user.id, "kp_0a1b2c3d"))
//!     .build()
//!     .unwrap();
//! let app = test::init_service(
//!     App::new().service(web::resource("/kinde/webhook").to(WebhookEndpoint::new(webhooks))),
//! )
//! .await;
//!
//! let req = delivery(&issuer, TestEvent::sample("user.created")).to_request();
//! let resp = test::call_service(&app, req).await;
//! assert_eq!(resp.status(), 200);
//!
//! // Another path or a webhook-id: through kinde-core's `Delivery` builder.
//! let req = issuer
//!     .delivery(TestEvent::sample("user.created"))
//!     .path("/kinde/webhook")
//!     .webhook_id("msg_1")
//!     .into_test_request()
//!     .to_request();
//! let body = test::call_and_read_body(&app, req).await;
//! assert_eq!(body, r#"{"status":"handled"}"#);
//! # }
//! ```

use actix_service::IntoServiceFactory as _;
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::App;
use kinde_core::testing::{Delivery, MountError, MountProbe, TestEvent, TestIssuer};

/// The most of an answer's body the proof reads (enough for any answer of ours).
const READ_AT_MOST: usize = 64 * 1024;

const ACTIX_ADVICE: &str = "How to fix (actix-web): mount the endpoint where the router decides \
    the path: `.service(web::resource(\"<path>\").to(WebhookEndpoint::new(webhooks)))` (or \
    `.route(\"<path>\", web::to(..))`, inside a scope with the path relative to it) — for every \
    method, and registered before any `web::scope` whose prefix covers the path (a scope answers \
    every path under its prefix). With `WebhookMiddleware`: `.wrap(..)` on the `App`; on a \
    `web::scope`, configure the path below the scope's prefix.";

/// A delivery of `event`, signed by `issuer`, as Kinde would POST it to `/kinde/webhook`: an
/// actix-web [`TestRequest`] (`POST`, `Content-Type: application/jwt`, the token as the
/// payload). For another path or a `webhook-id`, build kinde-core's
/// [`TestIssuer::delivery`] and call [`IntoTestRequest::into_test_request`] on it.
pub fn delivery(issuer: &TestIssuer, event: TestEvent) -> TestRequest {
    issuer.delivery(event).into_test_request()
}

/// kinde-core's signed [`Delivery`] as an actix-web [`TestRequest`].
pub trait IntoTestRequest {
    /// The same request as [`Delivery::into_request`]: its method, path, headers and body, as a
    /// [`TestRequest`].
    fn into_test_request(self) -> TestRequest;
}

impl IntoTestRequest for Delivery {
    fn into_test_request(self) -> TestRequest {
        let token = self.token().to_owned();
        let sent = self.into_request();
        let mut req = TestRequest::post().uri(&sent.uri().to_string());
        for (name, value) in sent.headers() {
            req = req.append_header((name.as_str(), value.as_bytes()));
        }
        req.set_payload(token)
    }
}

/// Sends the mount probe to `path` through `app` and panics, saying what answered instead and
/// how to fix the mounting, unless kinde-webhooks answered.
pub async fn assert_mounted<T, B>(app: App<T>, path: &str)
where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    if let Err(e) = check_mounted(app, path).await {
        panic!("{e}");
    }
}

/// [`assert_mounted`], returning the failure instead of panicking.
pub async fn check_mounted<T, B>(app: App<T>, path: &str) -> Result<(), MountError>
where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let probe = MountProbe::new(path).advice(ACTIX_ADVICE);
    let svc = app
        .into_factory()
        .new_service(AppConfig::default())
        .await
        .map_err(|()| probe.no_answer("the app failed to start (an app data factory failed)"))?;
    let sent = probe.request();
    let mut req = TestRequest::post().uri(&sent.uri().to_string());
    for (name, value) in sent.headers() {
        req = req.insert_header((name.as_str(), value.as_bytes()));
    }
    let req = req.set_payload(sent.into_body()).to_request();
    let resp = probe.within(test::try_call_service(&svc, req)).await?;
    let status = http::StatusCode::from_u16(resp.status().as_u16())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = http::HeaderMap::new();
    for (name, value) in resp.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let body = actix_web::body::to_bytes_limited(resp.into_body(), READ_AT_MOST).await;
    let body = match body {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let e: Box<dyn std::error::Error> = e.into();
            return Err(probe.no_answer(format_args!("the answer's body failed: {e}")));
        }
        // Longer than any answer of ours: not ours, whatever it says.
        Err(_) => bytes::Bytes::from_static(b"<a body over 64 KiB>"),
    };
    probe.check(status, &headers, &body)
}
