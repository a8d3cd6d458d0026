//! The bench-only floor: axum + jsonwebtoken, keys loaded once at start, the RS256 signature
//! check and nothing else — no typed events, replay window, dedupe, dispatch or tracing. The
//! limit of this stack on this machine.
//!
//! `KINDE_DOMAIN=http://127.0.0.1:PORT BIND=127.0.0.1:3001 floor-receiver`

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    validation: Validation,
}

async fn verify(State(keys): State<Arc<Keys>>, body: Bytes) -> StatusCode {
    let Ok(header) = jsonwebtoken::decode_header(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(key) = header.kid.as_deref().and_then(|k| keys.by_kid.get(k)) else {
        return StatusCode::UNAUTHORIZED;
    };
    match jsonwebtoken::decode::<serde::de::IgnoredAny>(&body, key, &keys.validation) {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

#[tokio::main]
async fn main() {
    let domain = std::env::var("KINDE_DOMAIN").expect("KINDE_DOMAIN");
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let jwks: JwkSet = reqwest::get(format!("{domain}/.well-known/jwks"))
        .await
        .and_then(|r| r.error_for_status())
        .expect("JWKS")
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .expect("JWKS JSON");
    let by_kid = jwks
        .keys
        .iter()
        .filter_map(|k| Some((k.common.key_id.clone()?, DecodingKey::from_jwk(k).ok()?)))
        .collect();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let keys = Arc::new(Keys { by_kid, validation });
    let app = Router::new()
        .route("/kinde/webhook", post(verify))
        .with_state(keys);
    let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
