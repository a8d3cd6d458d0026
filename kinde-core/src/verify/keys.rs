//! Turning a JWKS document into the RS256 keys we trust, by `kid`, each parsed once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use serde::Deserialize;
use serde_json::Value;

use super::crypto::VerifyingKey;
use super::source::JwksError;

/// Smallest and largest RSA modulus accepted, in bits. A huge attacker-chosen modulus would make
/// every verification slow; a small one is forgeable.
pub const MODULUS_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// Public exponents accepted: from 65537 (F4, what every issuer uses; tiny exponents such as 1 or
/// 3 only ever serve attacks on lax verifiers) to 2³³ − 1 (the largest both backends accept).
/// Odd only, as for any RSA key.
pub const EXPONENTS: std::ops::RangeInclusive<u64> = 65_537..=(1 << 33) - 1;

#[derive(Deserialize)]
struct Document {
    keys: Vec<Value>,
}

/// The usable keys of one JWKS document, and the `kid`s it lists with a key we refuse.
#[derive(Default)]
pub(crate) struct KeySet {
    pub(crate) keys: HashMap<String, Arc<VerifyingKey>>,
    /// Kids present in the document whose key the filters refuse: known, never usable.
    pub(crate) refused: HashSet<String>,
}

/// What a key set says about one `kid`.
pub(crate) enum Lookup {
    Found(Arc<VerifyingKey>),
    /// Listed, with a key we refuse (wrong use, operations, algorithm, size…).
    Refused,
    Missing,
}

impl KeySet {
    pub(crate) fn lookup(&self, kid: &str) -> Lookup {
        match self.keys.get(kid) {
            Some(key) => Lookup::Found(key.clone()),
            None if self.refused.contains(kid) => Lookup::Refused,
            None => Lookup::Missing,
        }
    }
}

/// Parses a JWKS document and keeps only keys with a `kid`, `kty=RSA`, `use` absent or `sig`,
/// `key_ops` absent or listing `verify`, `alg` absent or `RS256`, a modulus of 2048–4096 bits
/// and an exponent in [`EXPONENTS`], each parsed by the crypto backend. The first usable key
/// wins a duplicated `kid`. Every other entry with a `kid` is remembered as refused.
pub(crate) fn usable_keys(body: &[u8], max_keys: usize) -> Result<KeySet, JwksError> {
    let doc: Document = serde_json::from_slice(body).map_err(JwksError::InvalidJson)?;
    if doc.keys.len() > max_keys {
        return Err(JwksError::TooManyKeys {
            count: doc.keys.len(),
            limit: max_keys,
        });
    }
    let mut set = KeySet::default();
    for value in doc.keys {
        let Some(kid) = value
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
        else {
            tracing::debug!("ignoring a JWKS entry without a kid");
            continue;
        };
        match rs256_key(value) {
            Ok(key) if set.keys.contains_key(&kid) => {
                tracing::warn!(kid = %kid, "JWKS repeats a kid; keeping the first key");
                drop(key);
            }
            Ok(key) => {
                set.refused.remove(&kid);
                set.keys.insert(kid, Arc::new(key));
            }
            Err(why) => {
                tracing::debug!(kid = %kid, why, "ignoring a JWKS key");
                if !set.keys.contains_key(&kid) {
                    set.refused.insert(kid);
                }
            }
        }
    }
    if set.keys.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok(set)
}

fn rs256_key(value: Value) -> Result<VerifyingKey, &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "unreadable JWK")?;
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return Err("not an RSA key");
    };
    if !matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    ) {
        return Err("use is not sig");
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err("key_ops does not list verify");
    }
    if !matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)) {
        return Err("alg is not RS256");
    }
    let n = unsigned_be(&rsa.n).ok_or("unreadable modulus")?;
    let bits = bit_len(&n);
    if !MODULUS_BITS.contains(&bits) {
        tracing::warn!(kid = ?jwk.common.key_id, bits, "ignoring an RSA key outside 2048-4096 bits");
        return Err("modulus size out of range");
    }
    if n.last().is_some_and(|b| b & 1 == 0) {
        return Err("even modulus");
    }
    let e = unsigned_be(&rsa.e).ok_or("unreadable exponent")?;
    if e.len() > 8 {
        return Err("exponent out of range");
    }
    let e_value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if !EXPONENTS.contains(&e_value) || e_value & 1 == 0 {
        return Err("exponent out of range");
    }
    VerifyingKey::from_components(&n, &e, bits).ok_or("refused by the crypto backend")
}

/// A base64url big-endian integer without its leading zero bytes; `None` if unreadable or zero.
fn unsigned_be(b64: &str) -> Option<Vec<u8>> {
    let mut bytes = URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).ok()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    bytes.drain(..first);
    Some(bytes)
}

/// Bit length of a big-endian integer without leading zero bytes.
fn bit_len(significant: &[u8]) -> usize {
    match significant.first() {
        Some(top) => significant.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestKey;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn kids(set: &KeySet) -> (Vec<&str>, Vec<&str>) {
        let mut keys: Vec<&str> = set.keys.keys().map(String::as_str).collect();
        let mut refused: Vec<&str> = set.refused.iter().map(String::as_str).collect();
        keys.sort_unstable();
        refused.sort_unstable();
        (keys, refused)
    }

    #[test]
    fn integers_are_read_without_leading_zeros() {
        assert_eq!(unsigned_be(&b64(&[0, 0x80, 0])), Some(vec![0x80, 0]));
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01, 0]), 9);
        assert_eq!(unsigned_be(&b64(&[0; 4])), None);
        assert_eq!(unsigned_be("%%%"), None);
    }

    /// The primary fixture key with `field` set to `value`, under `kid`.
    fn primary_with(kid: &str, field: &str, value: Value) -> Value {
        let mut k = TestKey::primary().with_kid(kid).jwk();
        k[field] = value;
        k
    }

    #[test]
    fn keeps_rsa_signing_keys_and_remembers_the_refused_kids() {
        let mut no_use_encrypt = primary_with("ops-encrypt", "key_ops", json!(["encrypt"]));
        no_use_encrypt.as_object_mut().unwrap().remove("use");
        let doc = json!({"keys": [
            TestKey::primary().jwk(),
            primary_with("ops-verify", "key_ops", json!(["verify"])),
            primary_with("ops-sign-verify", "key_ops", json!(["sign", "verify"])),
            primary_with("enc", "use", json!("enc")),
            no_use_encrypt,
            primary_with("ops-empty", "key_ops", json!([])),
            primary_with("rs512", "alg", json!("RS512")),
            primary_with("e-1", "e", json!(b64(&[1]))),
            primary_with("e-3", "e", json!(b64(&[3]))),
            primary_with("e-65536", "e", json!(b64(&[1, 0, 0]))),
            primary_with("e-2^33", "e", json!(b64(&[2, 0, 0, 0, 1]))),
            primary_with("e-huge", "e", json!(b64(&[1; 9]))),
            primary_with("n-even", "n", json!(b64(&[0xff; 256].map(|b| b & 0xfe)))),
            {"kty": "RSA", "kid": "huge", "n": b64(&[0xff; 2048]), "e": "AQAB"},
            {"kty": "RSA", "kid": "tiny", "n": b64(&[0xff; 64]), "e": "AQAB"},
            {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
            {"kty": "RSA", "kid": "no-e", "n": TestKey::primary().jwk()["n"]},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])},
            {"kty": "oct", "kid": "oct", "k": b64(b"secret")},
            {"kty": "nonsense"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        ]});
        let set = usable_keys(doc.to_string().as_bytes(), 64).unwrap();
        let (keys, refused) = kids(&set);
        assert_eq!(keys, ["ops-sign-verify", "ops-verify", "test-primary"]);
        assert_eq!(
            refused,
            [
                "e-1",
                "e-2^33",
                "e-3",
                "e-65536",
                "e-huge",
                "ec",
                "enc",
                "huge",
                "n-even",
                "no-e",
                "no-n",
                "oct",
                "ops-empty",
                "ops-encrypt",
                "rs512",
                "tiny"
            ]
        );
        assert!(matches!(set.lookup("test-primary"), Lookup::Found(_)));
        assert!(matches!(set.lookup("enc"), Lookup::Refused));
        assert!(matches!(set.lookup("elsewhere"), Lookup::Missing));
    }

    #[test]
    fn the_largest_accepted_exponent_is_2_to_the_33_minus_1() {
        // Not a real key pair, but the backend parses public components without a private key.
        let e = b64(&((1u64 << 33) - 1).to_be_bytes()[3..]);
        let doc = json!({"keys": [primary_with("e-max", "e", json!(e))]});
        let set = usable_keys(doc.to_string().as_bytes(), 64).unwrap();
        assert_eq!(kids(&set).0, ["e-max"]);
    }

    #[test]
    fn bounds_and_garbage_are_errors() {
        let one = TestKey::primary().jwk();
        let many = json!({"keys": vec![one.clone(); 65]});
        assert!(matches!(
            usable_keys(many.to_string().as_bytes(), 64),
            Err(JwksError::TooManyKeys {
                count: 65,
                limit: 64
            })
        ));
        assert!(matches!(
            usable_keys(b"not json", 64),
            Err(JwksError::InvalidJson(_))
        ));
        assert!(matches!(
            usable_keys(br#"{"keys": []}"#, 64),
            Err(JwksError::NoUsableKeys)
        ));
        let refused_only = json!({"keys": [primary_with("enc", "use", json!("enc"))]});
        assert!(matches!(
            usable_keys(refused_only.to_string().as_bytes(), 64),
            Err(JwksError::NoUsableKeys)
        ));
    }

    #[test]
    fn duplicate_kid_keeps_the_first_usable_key() {
        let first = TestKey::primary().jwk();
        let mut second = TestKey::secondary().jwk();
        second["kid"] = first["kid"].clone();
        let doc = json!({"keys": [first, second]});
        let set = usable_keys(doc.to_string().as_bytes(), 64).unwrap();
        assert_eq!(set.keys.len(), 1);
        let message = b"header.payload";
        let by_first = TestKey::primary().sign_bytes(message);
        let Lookup::Found(key) = set.lookup("test-primary") else {
            panic!("no key")
        };
        assert!(key.verify_rs256(message, &by_first));
        // A refused entry before a usable one under the same kid does not hide it.
        let doc = json!({"keys": [primary_with("k", "use", json!("enc")), TestKey::secondary().with_kid("k").jwk()]});
        let set = usable_keys(doc.to_string().as_bytes(), 64).unwrap();
        assert_eq!(kids(&set), (vec!["k"], vec![]));
    }
}
