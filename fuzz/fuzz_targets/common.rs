#![allow(dead_code)] // Each target uses part of it.

//! Shared set-up of the fuzz targets: one receiver over a static key set (no network), a fixed
//! clock (so a crashing input replays the same way), and a valid token to splice into.

use std::sync::OnceLock;

use kinde_core::testing::{ManualClock, TestEvent, TestIssuer};
use kinde_core::verify::StaticKeySource;
use kinde_core::{Clock as _, WebhookEvent, Webhooks};

/// 2024-04-27T00:00:00Z: the clock of every run.
const NOW: i64 = 1_714_176_000;

/// The receiver and what the targets splice into.
pub struct Target {
    pub rt: tokio::runtime::Runtime,
    pub webhooks: Webhooks,
    /// Header, payload and signature of a valid `user.created` token (base64url).
    pub parts: [String; 3],
    /// The issuer's signing key, to sign fuzzed payloads.
    pub key: jsonwebtoken::EncodingKey,
}

pub fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let now = time::OffsetDateTime::from_unix_timestamp(NOW).expect("fixed time");
        build(ManualClock::new(now))
    })
}

fn build(clock: ManualClock) -> Target {
    let issuer = TestIssuer::new();
    let webhooks = Webhooks::builder()
        .key_source(StaticKeySource::new(issuer.jwks().to_string()))
        .clock(clock.clone())
        .fallback(|_e: WebhookEvent| async { Ok::<_, std::convert::Infallible>(()) })
        .build()
        .expect("valid configuration");
    let claims = TestEvent::sample("user.created")
        .event_id("event_fuzz_template")
        .timestamp(clock.now())
        .into_claims();
    let token = issuer.sign(&claims);
    let mut it = token.split('.').map(str::to_owned);
    let parts = [
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    ];
    let key = {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let private =
            rsa::RsaPrivateKey::from_pkcs8_pem(issuer.signer().private_pem()).expect("fixture key");
        let der = private.to_pkcs1_der().expect("fixture key encodes");
        jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes())
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    Target {
        rt,
        webhooks,
        parts,
        key,
    }
}

/// Sends one body and checks what must hold whatever the input.
pub fn deliver(body: &[u8]) {
    let t = target();
    let resp =
        t.rt.block_on(t.webhooks.handle(&http::HeaderMap::new(), body));
    if trace() {
        eprintln!("outcome: {}", resp.outcome().code());
    }
    let status = resp.status().as_u16();
    // Static keys never fail to load and the memory store never fails: no 503, ever. The
    // handler never fails either, so a 500 can only be a documented type with bad `data`.
    assert!(
        matches!(status, 200 | 400 | 401 | 409 | 413 | 500),
        "unexpected status {status} ({})",
        resp.outcome().code()
    );
    if status == 500 {
        assert_eq!(resp.outcome().code(), "unparseable_event");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&resp.body()).expect("the response body is JSON");
    let key = if status == 200 { "status" } else { "error" };
    assert_eq!(json[key], resp.outcome().code());
}

/// `KINDE_FUZZ_TRACE=1` prints each input's outcome code (to see how deep a corpus gets).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("KINDE_FUZZ_TRACE").is_some())
}
