//! The harness of the fuzz targets: one receiver per process over a static key set (no network),
//! a fixed clock (so a crashing input replays the same way), handlers that record every call,
//! and an [`oracle`] that says, without the receiver, what the spec allows for each body.
//!
//! [`check`] sends one body through `Webhooks::handle` and panics (a libFuzzer crash) when the
//! answer breaks a promise: a body without the issuer's signature over exactly its bytes got a
//! 200 or ran a handler; a handler ran twice for one `event_id` in the process; a verified event
//! was not answered as the spec says. See [`oracle::judge`] for the whole list.

#![warn(missing_docs)]

pub mod oracle;
pub mod splice;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use kinde_core::event::{Event, EventMeta, UserCreated, UserDeleted};
use kinde_core::testing::{ManualClock, TestIssuer};
use kinde_core::verify::StaticKeySource;
use kinde_core::{MemoryStoreConfig, ReplayWindow, State, Webhooks};

use oracle::{Call, Observed, Oracle};

/// 2024-04-27T00:00:00Z: the receiver's clock in every run.
pub const NOW: i64 = 1_714_176_000;

/// The receiver's body limit: small, so the fuzzer reaches the 413 (libFuzzer grows its inputs
/// slowly from the seeds' ≤ 1 KiB, to at most 4 KiB by default), yet above any seed.
pub const BODY_LIMIT: usize = 2 * 1024;

/// The memory store's capacity. Past it the store evicts the oldest handled ids (documented), so
/// the at-most-once check holds for the first this-many handled ids of a process.
pub const STORE_CAPACITY: usize = 1_000_000;

/// The handlers' record of their calls.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    fn push(&self, meta: &EventMeta) {
        lock(&self.0).push(Call {
            event_id: meta.event_id.as_str().to_owned(),
            event_type: meta.event_type.clone(),
        });
    }

    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *lock(&self.0))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receiver, its handlers' record, the oracle, and what the targets splice into.
pub struct Target {
    rt: tokio::runtime::Runtime,
    webhooks: Webhooks,
    calls: Calls,
    /// Ids handled so far in this process. Held for the whole of a [`check`], so checks run one
    /// after the other even when tests call them from several threads.
    handled: Mutex<HashSet<String>>,
    oracle: Oracle,
    /// The issuer (its key signs the spliced tokens).
    pub issuer: TestIssuer,
    /// The issuer's key, to sign fuzzed tokens fast.
    pub signer: aws_lc_rs::signature::RsaKeyPair,
    /// Header, payload and signature of a valid `user.created` token (base64url), at [`NOW`].
    pub parts: [String; 3],
    /// The template's header JSON (a JSON object).
    pub header_json: Vec<u8>,
}

/// The process's target, built on first use.
pub fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(build)
}

/// The receiver's clock.
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(NOW).expect("a fixed time in range")
}

fn build() -> Target {
    let issuer = TestIssuer::new();
    let calls = Calls::default();
    let window = ReplayWindow::default();
    let webhooks = Webhooks::builder()
        .key_source(StaticKeySource::new(issuer.jwks().to_string()))
        .clock(ManualClock::new(now()))
        .replay_window(window)
        .body_limit(BODY_LIMIT)
        .memory_store(MemoryStoreConfig::default().capacity(STORE_CAPACITY))
        .state(calls.clone())
        .on(async |State(c): State<Calls>, e: Event<UserCreated>| c.push(&e.meta))
        .on(async |State(c): State<Calls>, e: Event<UserDeleted>| c.push(&e.meta))
        .fallback(async |State(c): State<Calls>, e: Event| c.push(&e.meta))
        .build()
        .expect("a valid configuration");
    let signer = {
        use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
        let private =
            rsa::RsaPrivateKey::from_pkcs8_pem(issuer.signer().private_pem()).expect("fixture key");
        let der = private.to_pkcs8_der().expect("fixture key encodes");
        aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).expect("fixture key loads")
    };
    let token = issuer.sign(&splice::template_claims());
    let mut it = token.split('.').map(str::to_owned);
    let parts = [(); 3].map(|_| it.next().unwrap_or_default());
    let header_json = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[0])
            .expect("the template header is base64url")
    };
    let oracle = Oracle::new(
        issuer.signer().public_pem(),
        issuer.signer().kid(),
        now(),
        window,
        BODY_LIMIT,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    Target {
        rt,
        webhooks,
        calls,
        handled: Mutex::default(),
        oracle,
        issuer,
        signer,
        parts,
        header_json,
    }
}

impl Target {
    /// The oracle (the issuer's key, the clock, the window and the body limit).
    pub fn oracle(&self) -> &Oracle {
        &self.oracle
    }

    /// Signs `message` (`header.payload`) with the issuer's key: the base64url signature.
    pub fn sign(&self, message: &[u8]) -> String {
        use base64::Engine as _;
        let mut sig = vec![0; self.signer.public_modulus_len()];
        self.signer
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .expect("signing with the fixture key");
        self.oracle.remember(&sig, message);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    }
}

/// Sends one body through `Webhooks::handle` and checks the answer against the oracle; returns
/// the outcome's code. Panics, with the body, the verdict and what went wrong, on a broken
/// promise.
pub fn check(body: &[u8]) -> &'static str {
    let t = target();
    let verdict = t.oracle.verdict(body);
    let mut handled = lock(&t.handled);
    let resp =
        t.rt.block_on(t.webhooks.handle(&http::HeaderMap::new(), body));
    let calls = t.calls.take();
    let code = resp.outcome().code();
    let status = resp.status().as_u16();
    if trace() {
        eprintln!("outcome: {code}");
    }
    let fail = |why: String| -> ! {
        panic!(
            "{why}\nbody: {:?}\nverdict: {verdict:?}",
            String::from_utf8_lossy(body)
        )
    };
    // The answer's body names the outcome; every 503 carries Retry-After.
    let json: serde_json::Value = serde_json::from_slice(&resp.body())
        .unwrap_or_else(|e| fail(format!("the response body is not JSON: {e}")));
    let key = if status == 200 { "status" } else { "error" };
    if json[key] != code {
        fail(format!("the response body {json} does not name `{code}`"));
    }
    if status == 503 && !resp.headers().contains_key(http::header::RETRY_AFTER) {
        fail(format!("a 503 `{code}` without Retry-After"));
    }
    // Eviction only starts at capacity; until then every handled id is remembered.
    let dedup = handled.len() < STORE_CAPACITY;
    let observed = Observed {
        code,
        status,
        calls: &calls,
    };
    match oracle::judge(&verdict, &handled, dedup, &observed) {
        Ok(Some(id)) => {
            handled.insert(id);
        }
        Ok(None) => {}
        Err(why) => fail(why),
    }
    code
}

/// The number of distinct event ids handled so far in this process.
pub fn handled_count() -> usize {
    lock(&target().handled).len()
}

/// `KINDE_FUZZ_TRACE=1` prints each input's outcome code (to see how deep a corpus gets).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("KINDE_FUZZ_TRACE").is_some())
}

#[cfg(test)]
mod tests;
