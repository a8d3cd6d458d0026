//! The token level: the body's shape, the header and the signature.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use rsa::pkcs1v15::VerifyingKey;
use rsa::sha2::{Digest as _, Sha256};
use rsa::signature::Verifier as _;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use std::collections::HashMap;
use std::sync::Mutex;

use super::{claims, is_null, Allowed, Fields, Verdict};

/// The header codes a receiver may give a token it cannot read or does not accept.
const HEADER_CODES: &[&str] = &[
    "malformed_token",
    "unsupported_algorithm",
    "missing_kid",
    "unknown_kid",
    "unsupported_crit",
];

/// The header fields whose values the rules read (`alg` and `kid` first: every receiver reads
/// them).
const HEADER_READ: &[&str] = &["alg", "kid", "typ"];

/// Whether a body carries the issuer's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Not a compact JWS at all.
    NotAToken,
    /// The signature segment, read as base64url without padding (as RFC 7515 writes it), is the
    /// issuer's RS256 signature over exactly `header.payload`.
    Valid,
    /// The issuer's signature, but only when the segment is read leniently (padding, the standard
    /// alphabet, non-zero trailing bits): a receiver may refuse it as malformed.
    ValidIfLenient,
    /// Not the issuer's signature over these bytes: whatever else the body holds, it is refused.
    Invalid,
}

/// Most signatures remembered (past it the memory starts over).
const REMEMBERED: usize = 1 << 16;

/// What the oracle knows: the issuer's public key and `kid`, the receiver's clock, replay window
/// and body limit.
pub struct Oracle {
    key: VerifyingKey<Sha256>,
    /// The modulus in bytes: the length of every RS256 signature by the key.
    modulus_len: usize,
    /// Signatures known to be the issuer's, with the SHA-256 of the message each one signs. An
    /// RS256 signature signs exactly one digest (PKCS#1 v1.5 encodes it whole), so a remembered
    /// signature is valid over a message exactly when the digests match: no RSA operation for
    /// the fuzzer's many splices of one signature onto other bytes.
    remembered: Mutex<HashMap<Vec<u8>, [u8; 32]>>,
    kid: String,
    pub(crate) now: OffsetDateTime,
    pub(crate) max_age: time::Duration,
    pub(crate) max_future: time::Duration,
    body_limit: usize,
    /// `KINDE_FUZZ_WAIVE_CRIT=1`: `crit`/`b64` are only fields a receiver may not understand
    /// (for a kinde-core that does not refuse them yet; see the README).
    waive_crit: bool,
}

impl std::fmt::Debug for Oracle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oracle")
            .field("kid", &self.kid)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Oracle {
    /// An oracle for the issuer whose public key is `public_pem` (SPKI PEM) under `kid`.
    pub fn new(
        public_pem: &str,
        kid: &str,
        now: OffsetDateTime,
        window: kinde_core::ReplayWindow,
        body_limit: usize,
    ) -> Self {
        use rsa::pkcs8::DecodePublicKey as _;
        let public = rsa::RsaPublicKey::from_public_key_pem(public_pem).expect("fixture key");
        let modulus_len = rsa::traits::PublicKeyParts::size(&public);
        Self {
            modulus_len,
            key: VerifyingKey::new(public),
            remembered: Mutex::default(),
            kid: kid.to_owned(),
            now,
            max_age: window
                .max_age_allowed()
                .try_into()
                .expect("a window in range"),
            max_future: window
                .max_future_allowed()
                .try_into()
                .expect("a window in range"),
            body_limit,
            waive_crit: std::env::var_os("KINDE_FUZZ_WAIVE_CRIT").is_some(),
        }
    }

    /// The verdict for one body (no `webhook-id` header).
    pub fn verdict(&self, body: &[u8]) -> Verdict {
        if body.len() > self.body_limit {
            return Verdict::refuse(&["payload_too_large"], Signature::NotAToken);
        }
        // The spec reads the token with surrounding ASCII whitespace trimmed (a trailing newline
        // is common); inside it, nothing is trimmed.
        let token = body.trim_ascii();
        let dots: Vec<usize> = token
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'.')
            .map(|(i, _)| i)
            .collect();
        let &[first, last] = dots.as_slice() else {
            return Verdict::refuse(&["malformed_token"], Signature::NotAToken);
        };
        let (header, payload, signature) =
            (&token[..first], &token[first + 1..last], &token[last + 1..]);
        let signature = self.signature(&token[..last], signature);
        let mut allowed = self.header(header);
        if signature == Signature::Invalid {
            // Which of the header or the signature is checked first is not the spec's business;
            // the claims are never read before the signature verified.
            allowed.must(&["invalid_signature", "malformed_token"]);
        }
        if signature == Signature::ValidIfLenient {
            allowed.may(&["malformed_token", "invalid_signature"]);
        }
        if allowed.refused {
            return Verdict {
                allowed,
                event: None,
                signature,
            };
        }
        let (claims, event) = claims::read(payload, self);
        allowed.merge(claims);
        let event = if allowed.refused { None } else { event };
        Verdict {
            allowed,
            event,
            signature,
        }
    }

    /// Remembers `signature` as the issuer's over `message` (the harness signed it with the
    /// issuer's private key).
    pub fn remember(&self, signature: &[u8], message: &[u8]) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= REMEMBERED {
            remembered.clear();
        }
        remembered.insert(signature.to_vec(), Sha256::digest(message).into());
    }

    /// Whether `signature` is the issuer's RS256 signature over exactly `message`.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.modulus_len {
            return false;
        }
        let digest: [u8; 32] = Sha256::digest(message).into();
        let known = self
            .remembered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(signature)
            .copied();
        if let Some(signed) = known {
            return signed == digest;
        }
        let valid = rsa::pkcs1v15::Signature::try_from(signature)
            .is_ok_and(|s| self.key.verify(message, &s).is_ok());
        if valid {
            self.remember(signature, message);
        }
        valid
    }

    fn signature(&self, message: &[u8], segment: &[u8]) -> Signature {
        let verifies = |bytes: Vec<u8>| self.verifies(message, &bytes);
        if let Ok(bytes) = URL_SAFE_NO_PAD.decode(segment) {
            return if verifies(bytes) {
                Signature::Valid
            } else {
                Signature::Invalid
            };
        }
        let lenient = GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent);
        for alphabet in [&alphabet::URL_SAFE, &alphabet::STANDARD] {
            if let Ok(bytes) = GeneralPurpose::new(alphabet, lenient).decode(segment) {
                if verifies(bytes) {
                    return Signature::ValidIfLenient;
                }
            }
        }
        Signature::Invalid
    }

    /// The header rules: base64url JSON object, `alg` RS256, a `kid` naming the issuer's key, no
    /// `crit` (nor RFC 7797's `b64`). Other fields a receiver may or may not understand.
    fn header(&self, segment: &[u8]) -> Allowed {
        let mut allowed = Allowed::default();
        let Ok(json) = URL_SAFE_NO_PAD.decode(segment) else {
            allowed.must(&["malformed_token"]);
            return allowed;
        };
        // A receiver reads `alg` and `kid`, and may read `typ`: if only `typ` is unreadable (bad
        // UTF-8 in it, say), either answer is allowed.
        let fields = match Fields::parse(&json, HEADER_READ) {
            Ok(fields) => fields,
            Err(_) => match Fields::parse(&json, &HEADER_READ[..2]) {
                Ok(fields) => {
                    allowed.may(&["malformed_token"]);
                    fields
                }
                Err(_) => {
                    allowed.must(&["malformed_token"]);
                    return allowed;
                }
            },
        };
        if fields.repeats() {
            // JSON parsers differ on repeated names: refusing is right, taking the last may be.
            allowed.may(HEADER_CODES);
        }
        let mut algs = fields.all("alg").peekable();
        if algs.peek().is_none() {
            allowed.must(&["malformed_token", "unsupported_algorithm"]);
        }
        for alg in algs {
            if serde_json::from_str::<&str>(alg.get()).ok() != Some("RS256") {
                allowed.must(&["malformed_token", "unsupported_algorithm"]);
            }
        }
        let mut kids = fields.all("kid").filter(|k| !is_null(k)).peekable();
        if kids.peek().is_none() {
            allowed.must(&["missing_kid"]);
        }
        for kid in kids {
            match serde_json::from_str::<String>(kid.get()) {
                Ok(kid) if kid == self.kid => {}
                // An unknown kid makes a receiver refetch the keys; within the refetch cooldown
                // it may answer 503 (the key might just have been published) — never a 200.
                Ok(kid) if kid.is_empty() => {
                    allowed.must(&["missing_kid", "unknown_kid", "kid_refetch_throttled"])
                }
                Ok(_) => allowed.must(&["unknown_kid", "kid_refetch_throttled"]),
                Err(_) => allowed.must(&["malformed_token"]),
            }
        }
        for name in ["crit", "b64"] {
            // Only their presence counts (their values are not read).
            for null in fields.presence(name) {
                if null || self.waive_crit {
                    allowed.may(&["unsupported_crit", "malformed_token"]);
                } else {
                    allowed.must(&["unsupported_crit", "malformed_token"]);
                }
            }
        }
        for name in fields.names() {
            match name {
                "alg" | "kid" | "crit" | "b64" => {}
                "typ"
                    if fields
                        .get("typ")
                        .is_some_and(|t| is_string(t) || is_null(t)) => {}
                _ => allowed.may(&["malformed_token"]),
            }
        }
        allowed
    }
}

fn is_string(raw: &RawValue) -> bool {
    raw.get().starts_with('"')
}
