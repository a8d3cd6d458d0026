//! kinde-tower with `default-features = false, features = ["rust-crypto"]`: kinde-core gets no
//! aws-lc-rs and no HTTP client (pure Rust, keys pinned in configuration), beside the app's own
//! jsonwebtoken with `rust_crypto`. The features reach kinde-core through the adapter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{verifications, TestEvent, TestIssuer};
use kinde_core::verify::StaticKeySource;
use kinde_core::Webhooks;
use serde_json::{json, Value};
use tower::{Layer as _, ServiceExt as _};

#[tokio::test]
async fn the_receiver_the_test_kit_and_the_apps_own_jsonwebtoken_all_work() {
    // No HTTP client in this graph: an issuer URL cannot be fetched, and says so.
    let err = Webhooks::builder()
        .issuer("acme.kinde.com")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("http-jwks"), "{err}");

    // Keys pinned in configuration; the test kit signs with RustCrypto.
    let issuer = TestIssuer::new();
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let webhooks = Webhooks::builder()
        .key_source(StaticKeySource::new(issuer.jwks().to_string()))
        .on(move |_: Event<UserCreated>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .build()
        .unwrap();
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let resp = webhooks
        .handle(&http::HeaderMap::new(), token.as_bytes())
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.outcome().code()),
        (200, "handled")
    );
    let forged = issuer.forge(&TestEvent::sample("user.created").into_claims());
    let resp = webhooks
        .handle(&http::HeaderMap::new(), forged.as_bytes())
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.outcome().code()),
        (401, "invalid_signature")
    );

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
    // RustCrypto verified all three; aws-lc-rs is not even compiled in.
    assert_eq!(kinde_core::crypto_backend(), "rust-crypto");
    let after = verifications();
    assert_eq!((after.rust_crypto, after.aws_lc_rs), (3, 0));

    // The app's own jsonwebtoken, as it would work without us.
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
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let public = DecodingKey::from_rsa_pem(issuer.signer().public_pem().as_bytes()).unwrap();
    let read = decode::<Value>(&token, &public, &validation).unwrap();
    assert_eq!(read.claims["type"], "user.created");
    assert!(decode::<Value>(&forged, &public, &validation).is_err());
}
