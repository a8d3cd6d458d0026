//! The jsonwebtoken floor (bench-only): axum + jsonwebtoken, each key loaded once at start
//! (`DecodingKey::from_jwk`), `jsonwebtoken::decode` of the claims we need, a set for dedupe and
//! the stdout line — the receiver one writes with jsonwebtoken without thinking about its cost.
//! No replay window, token-kind check, typed events, handlers, tracing or bounds.
//!
//! `KINDE_DOMAIN=http://127.0.0.1:PORT BIND=127.0.0.1:3001 jwt-floor`

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kinde_bench::{fetch_jwks, print_handled, serve, Seen};

struct App {
    by_kid: HashMap<String, DecodingKey>,
    validation: Validation,
    seen: Seen,
}

#[derive(serde::Deserialize)]
struct Claims {
    #[serde(rename = "type")]
    event_type: String,
    event_id: String,
}

async fn receive(State(app): State<Arc<App>>, body: Bytes) -> StatusCode {
    let Ok(token) = std::str::from_utf8(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let token = token.trim();
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(key) = header.kid.as_deref().and_then(|k| app.by_kid.get(k)) else {
        return StatusCode::UNAUTHORIZED;
    };
    let Ok(data) = jsonwebtoken::decode::<Claims>(token, key, &app.validation) else {
        return StatusCode::UNAUTHORIZED;
    };
    if app.seen.insert(&data.claims.event_id) {
        print_handled(&data.claims.event_type, &data.claims.event_id);
    }
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let domain = std::env::var("KINDE_DOMAIN").expect("KINDE_DOMAIN");
    let jwks: JwkSet = serde_json::from_slice(&fetch_jwks(&domain).await).expect("JWKS JSON");
    let by_kid = jwks
        .keys
        .iter()
        .filter_map(|k| Some((k.common.key_id.clone()?, DecodingKey::from_jwk(k).ok()?)))
        .collect();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let app = Arc::new(App {
        by_kid,
        validation,
        seen: Seen::default(),
    });
    serve(
        Router::new()
            .route("/kinde/webhook", post(receive))
            .with_state(app),
    )
    .await;
}
