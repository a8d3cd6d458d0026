//! An app that validates its own tokens with jsonwebtoken's `rust_crypto` backend and receives
//! Kinde webhooks through kinde-tower with its default features (aws-lc-rs). When kinde-core
//! verified through jsonwebtoken, cargo unified both backends into the one jsonwebtoken and
//! every call, ours and the app's, panicked. Now each side has the crypto it asked for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{verifications, TestEvent, TestIssuer};
use kinde_core::Webhooks;
use serde_json::{json, Value};
use tower::{Layer as _, ServiceExt as _};

#[tokio::test]
async fn the_receiver_the_test_kit_and_the_apps_own_jsonwebtoken_all_work() {
    // The test kit signs (with aws-lc-rs, never through jsonwebtoken)...
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let webhooks = Webhooks::builder()
        .issuer(jwks.url())
        .on(move |_: Event<UserCreated>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .build()
        .unwrap();
    let before = verifications();
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());

    // ...Webhooks::handle verifies and dispatches...
    let resp = webhooks
        .handle(&http::HeaderMap::new(), token.as_bytes())
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.outcome().code()),
        (200, "handled")
    );

    // ...and so does kinde-tower, in front of an app.
    let app = kinde_tower::WebhookLayer::new(webhooks.clone()).layer(tower::service_fn(
        |_: http::Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        },
    ));
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let req = http::Request::post(webhooks.path())
        .body(Full::new(Bytes::from(token.clone())))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"status":"handled"}"#);
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    // aws-lc-rs verified both; RustCrypto (the app's jsonwebtoken backend) none of ours.
    assert_eq!(kinde_core::crypto_backend(), "aws-lc-rs");
    let after = verifications();
    assert_eq!(after.aws_lc_rs - before.aws_lc_rs, 2);
    assert_eq!(after.rust_crypto, 0);

    // The app's own jsonwebtoken: its backend is chosen from its features alone (rust_crypto),
    // no provider to install, nothing panics.
    let secret = b"the app's own secret";
    let claims = json!({"sub": "user_1", "exp": jsonwebtoken::get_current_timestamp() + 600});
    let own = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    let validation = Validation::new(Algorithm::HS256);
    let read = decode::<Value>(&own, &DecodingKey::from_secret(secret), &validation).unwrap();
    assert_eq!(read.claims["sub"], "user_1");
    assert!(decode::<Value>(&own, &DecodingKey::from_secret(b"wrong"), &validation).is_err());
    // It also reads the test kit's RS256 tokens: the kit signs standard JWS.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let public = DecodingKey::from_rsa_pem(issuer.signer().public_pem().as_bytes()).unwrap();
    let read = decode::<Value>(&token, &public, &validation).unwrap();
    assert_eq!(read.claims["type"], "user.created");
    let forged = issuer.forge(&TestEvent::sample("user.created").into_claims());
    assert!(decode::<Value>(&forged, &public, &validation).is_err());
}
