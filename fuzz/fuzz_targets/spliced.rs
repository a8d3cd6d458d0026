//! The fuzz input spliced into an otherwise valid token, so the fuzzer gets past the header,
//! the key lookup and (for mode 5) the signature.
//!
//! The first byte selects the mode, the rest is the data:
//! - 0..=2: the data replaces the header, payload or signature segment as is;
//! - 3: the data is the header JSON (base64url-encoded; payload and signature kept);
//! - 4: the data is the payload JSON (base64url-encoded; the old signature kept: must fail);
//! - 5: the data is the payload JSON, base64url-encoded **and signed** with the issuer's key:
//!   everything after the signature (claims, timestamps, event types, `data`) is fuzzed.
//!
//! Other first bytes: the data is the whole body.

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let t = common::target();
    let [header, payload, signature] = &t.parts;
    let mut body: Vec<u8> = Vec::with_capacity(data.len() + 512);
    let join = |parts: [&[u8]; 3]| parts.join(&b'.');
    match mode % 8 {
        0 => body = join([data, payload.as_bytes(), signature.as_bytes()]),
        1 => body = join([header.as_bytes(), data, signature.as_bytes()]),
        2 => body = join([header.as_bytes(), payload.as_bytes(), data]),
        3 => {
            let h = b64(data);
            body = join([h.as_bytes(), payload.as_bytes(), signature.as_bytes()]);
        }
        4 => {
            let p = b64(data);
            body = join([header.as_bytes(), p.as_bytes(), signature.as_bytes()]);
        }
        5 => {
            let message = format!("{header}.{}", b64(data));
            let sig = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &t.key,
                jsonwebtoken::Algorithm::RS256,
            )
            .expect("signing with the fixture key");
            body.extend_from_slice(format!("{message}.{sig}").as_bytes());
        }
        _ => body.extend_from_slice(data),
    }
    common::deliver(&body);
});
