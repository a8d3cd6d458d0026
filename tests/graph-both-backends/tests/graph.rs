//! An app whose own jsonwebtoken enables both `aws_lc_rs` and `rust_crypto`, receiving Kinde
//! webhooks through kinde-actix's defaults. jsonwebtoken cannot choose between two backends by
//! itself, so the app installs a `CryptoProvider`, as it would without us; kinde-core, which
//! does not go through jsonwebtoken, works before and after, and chooses aws-lc-rs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{test, App};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{verifications, TestEvent, TestIssuer};
use kinde_core::Webhooks;
use serde_json::{json, Value};

#[actix_web::test]
async fn the_receiver_the_test_kit_and_the_apps_own_jsonwebtoken_all_work() {
    // Nothing has touched jsonwebtoken's provider yet: our side does not need one.
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
    let resp = webhooks
        .handle(&http::HeaderMap::new(), token.as_bytes())
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.outcome().code()),
        (200, "handled")
    );

    // Through kinde-actix.
    let app =
        test::init_service(App::new().wrap(kinde_actix::WebhookMiddleware::new(webhooks.clone())))
            .await;
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let req = test::TestRequest::post()
        .uri(webhooks.path())
        .set_payload(token.clone())
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(test::read_body(resp).await, r#"{"status":"handled"}"#);
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    // Both backend features are on in kinde-core's graph too; aws-lc-rs is the one verifying.
    assert_eq!(kinde_core::crypto_backend(), "aws-lc-rs");
    let after = verifications();
    assert_eq!(after.aws_lc_rs - before.aws_lc_rs, 2);
    assert_eq!(after.rust_crypto, 0);

    // The app picks jsonwebtoken's provider, as jsonwebtoken requires with both backends on
    // (naming both providers also proves both features are enabled in this graph).
    let _both = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
        .install_default()
        .expect("no provider installed before");
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
    let forged = issuer.forge(&TestEvent::sample("user.created").into_claims());
    assert!(decode::<Value>(&forged, &public, &validation).is_err());

    // And the receiver still verifies once the app's provider is installed.
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    let resp = webhooks
        .handle(&http::HeaderMap::new(), token.as_bytes())
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.outcome().code()),
        (200, "handled")
    );
    assert_eq!(verifications().aws_lc_rs - before.aws_lc_rs, 3);
}
