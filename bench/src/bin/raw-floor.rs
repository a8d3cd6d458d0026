//! The raw floor (bench-only): axum + aws-lc-rs, each key parsed once at start
//! (`ParsedPublicKey`), the signature checked over borrowed slices of the body with stack
//! buffers, the claims read once (borrowed: `type` and `event_id`), a set for dedupe and the
//! stdout line. The best this stack (axum, serde_json, aws-lc-rs) can do; no replay window,
//! token-kind check, typed events, handlers, tracing or bounds.
//!
//! `KINDE_DOMAIN=http://127.0.0.1:PORT BIND=127.0.0.1:3001 raw-floor`

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use kinde_bench::{fetch_jwks, print_handled, serve, Seen};

struct App {
    by_kid: HashMap<String, ParsedPublicKey>,
    seen: Seen,
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct Claims<'a> {
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    event_id: Cow<'a, str>,
}

#[derive(serde::Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(serde::Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

fn verify(app: &App, body: &[u8]) -> StatusCode {
    let token = body.trim_ascii();
    let mut dots = token.iter().enumerate().filter(|(_, b)| **b == b'.');
    let (Some((first, _)), Some((second, _)), None) = (dots.next(), dots.next(), dots.next())
    else {
        return StatusCode::BAD_REQUEST;
    };
    let mut header = [0u8; 512];
    let Ok(n) = URL_SAFE_NO_PAD.decode_slice(&token[..first], &mut header) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(header) = serde_json::from_slice::<Header<'_>>(&header[..n]) else {
        return StatusCode::BAD_REQUEST;
    };
    if header.alg != "RS256" {
        return StatusCode::UNAUTHORIZED;
    }
    let Some(key) = header.kid.as_deref().and_then(|k| app.by_kid.get(k)) else {
        return StatusCode::UNAUTHORIZED;
    };
    let mut signature = [0u8; 512];
    let Ok(n) = URL_SAFE_NO_PAD.decode_slice(&token[second + 1..], &mut signature) else {
        return StatusCode::UNAUTHORIZED;
    };
    if key.verify_sig(&token[..second], &signature[..n]).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let mut payload = [0u8; 8192];
    let Ok(n) = URL_SAFE_NO_PAD.decode_slice(&token[first + 1..second], &mut payload) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(claims) = serde_json::from_slice::<Claims<'_>>(&payload[..n]) else {
        return StatusCode::BAD_REQUEST;
    };
    if app.seen.insert(&claims.event_id) {
        print_handled(&claims.event_type, &claims.event_id);
    }
    StatusCode::OK
}

async fn receive(State(app): State<Arc<App>>, body: Bytes) -> StatusCode {
    verify(&app, &body)
}

fn parse_key(jwk: &Jwk) -> Option<(String, ParsedPublicKey)> {
    if jwk.kty != "RSA" {
        return None;
    }
    let n = URL_SAFE_NO_PAD.decode(jwk.n.as_deref()?).ok()?;
    let e = URL_SAFE_NO_PAD.decode(jwk.e.as_deref()?).ok()?;
    let key = RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()?;
    Some((jwk.kid.clone()?, key))
}

#[tokio::main]
async fn main() {
    let domain = std::env::var("KINDE_DOMAIN").expect("KINDE_DOMAIN");
    let jwks: Jwks = serde_json::from_slice(&fetch_jwks(&domain).await).expect("JWKS JSON");
    let app = Arc::new(App {
        by_kid: jwks.keys.iter().filter_map(parse_key).collect(),
        seen: Seen::default(),
    });
    serve(
        Router::new()
            .route("/kinde/webhook", post(receive))
            .with_state(app),
    )
    .await;
}
