//! Tools for `bench/run.sh`, the end-to-end load benchmark (see `BENCHMARKS.md`): the local
//! issuer (`bench-issuer`) and two bench-only floors, receivers that do only what a bare
//! receiver must, to measure ours against:
//!
//! - `jwt-floor`: axum + jsonwebtoken, each key loaded once, `jsonwebtoken::decode` (the
//!   signature check, the claims read into a struct), a set for dedupe, the stdout line;
//! - `raw-floor`: axum + aws-lc-rs, each key parsed once (`ParsedPublicKey`), the signature
//!   checked over borrowed slices with stack buffers, the claims read once (borrowed), a set for
//!   dedupe, the stdout line. The best this stack can do.
//!
//! Both answer 200 for a valid token (new or duplicate), 400 for a malformed one and 401 for a
//! bad signature or an unknown `kid`; neither has a replay window, a token-kind check, typed
//! events, handlers, tracing or a bound on bodies or time. They print the same stdout line as
//! our receivers, `handled <type> <event_id>`, synchronous and flushed, once per new event.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::Write as _;
use std::sync::Mutex;

/// The ids seen, in 16 locked shards (as our in-memory store spreads its entries).
pub struct Seen {
    shards: Box<[Mutex<HashSet<Box<str>>>]>,
    hasher: RandomState,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            shards: (0..16).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Seen {
    /// Records `id`; whether it was new.
    pub fn insert(&self, id: &str) -> bool {
        let shard = &self.shards[self.hasher.hash_one(id) as usize % self.shards.len()];
        let mut set = shard.lock().unwrap_or_else(|e| e.into_inner());
        if set.contains(id) {
            return false;
        }
        set.insert(id.into())
    }
}

/// The receivers' stdout line, `handled <type> <event_id>`, written and flushed at once.
pub fn print_handled(event_type: &str, event_id: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "handled {event_type} {event_id}");
    let _ = out.flush();
}

/// The issuer's JWKS document (`KINDE_DOMAIN` + `/.well-known/jwks`), fetched once at start.
pub async fn fetch_jwks(domain: &str) -> Vec<u8> {
    reqwest::get(format!("{domain}/.well-known/jwks"))
        .await
        .and_then(|r| r.error_for_status())
        .expect("JWKS")
        .bytes()
        .await
        .expect("JWKS body")
        .to_vec()
}

/// Serves `app` on `BIND` (default `127.0.0.1:3001`) with `axum::serve`.
pub async fn serve(app: axum::Router) {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
