//! Turning a JWKS document into the RS256 keys we trust, by `kid`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::source::JwksError;

/// Smallest and largest RSA modulus accepted, in bits. A huge attacker-chosen modulus would make
/// every verification slow; a small one is forgeable.
pub const MODULUS_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document and keeps only keys with a `kid`, `kty=RSA`, `use` absent or `sig`,
/// `alg` absent or `RS256`, and a modulus of 2048–4096 bits. The first key wins a duplicated `kid`.
pub(crate) fn usable_keys(
    body: &[u8],
    max_keys: usize,
) -> Result<HashMap<String, Arc<DecodingKey>>, JwksError> {
    let doc: Document = serde_json::from_slice(body).map_err(JwksError::InvalidJson)?;
    if doc.keys.len() > max_keys {
        return Err(JwksError::TooManyKeys {
            count: doc.keys.len(),
            limit: max_keys,
        });
    }
    let mut out = HashMap::new();
    for value in doc.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            tracing::debug!("ignoring a JWKS entry jsonwebtoken cannot read");
            continue;
        };
        let Some((kid, key)) = rs256_key(&jwk) else {
            continue;
        };
        if out.contains_key(&kid) {
            tracing::warn!(kid = %kid, "JWKS repeats a kid; keeping the first key");
            continue;
        }
        out.insert(kid, Arc::new(key));
    }
    if out.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok(out)
}

fn rs256_key(jwk: &Jwk) -> Option<(String, DecodingKey)> {
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty())?;
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return None;
    };
    if !matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    ) {
        return None;
    }
    if !matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)) {
        return None;
    }
    let bits = modulus_bits(&rsa.n)?;
    if !MODULUS_BITS.contains(&bits) {
        tracing::warn!(kid = %kid, bits, "ignoring an RSA key outside 2048-4096 bits");
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, key))
}

/// Bit length of a base64url big-endian modulus (leading zero bytes ignored).
fn modulus_bits(n_b64: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n_b64.trim_end_matches('='))
        .ok()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    let significant = &bytes[first..];
    Some(significant.len() * 8 - significant[0].leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestKey;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn modulus_bits_counts_significant_bits() {
        assert_eq!(modulus_bits(&b64(&[0, 0x80, 0])), Some(16));
        assert_eq!(modulus_bits(&b64(&[0x01, 0])), Some(9));
        assert_eq!(modulus_bits(&b64(&[0; 4])), None);
        assert_eq!(modulus_bits("%%%"), None);
    }

    #[test]
    fn keeps_rsa_signing_keys_and_ignores_the_rest() {
        let good = TestKey::primary().jwk();
        let mut enc = TestKey::secondary().jwk();
        enc["use"] = json!("enc");
        let mut wrong_alg = TestKey::attacker().jwk();
        wrong_alg["kid"] = json!("wrong-alg");
        wrong_alg["alg"] = json!("RS512");
        let huge = json!({"kty": "RSA", "kid": "huge", "n": b64(&[0xff; 2048]), "e": "AQAB"});
        let tiny = json!({"kty": "RSA", "kid": "tiny", "n": b64(&[0xff; 64]), "e": "AQAB"});
        let ec = json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])});
        let oct = json!({"kty": "oct", "kid": "oct", "k": b64(b"secret")});
        let no_kid = {
            let mut k = TestKey::secondary().jwk();
            k.as_object_mut().unwrap().remove("kid");
            k
        };
        let doc = json!({"keys": [good, enc, wrong_alg, huge, tiny, ec, oct, no_kid, {"kty": "nonsense"}]});
        let keys = usable_keys(doc.to_string().as_bytes(), 64).unwrap();
        assert_eq!(
            keys.keys().collect::<Vec<_>>(),
            vec![&TestKey::primary().kid().to_string()]
        );
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
    }

    #[test]
    fn duplicate_kid_keeps_the_first() {
        let first = TestKey::primary().jwk();
        let mut second = TestKey::secondary().jwk();
        second["kid"] = first["kid"].clone();
        let doc = json!({"keys": [first, second]});
        let keys = usable_keys(doc.to_string().as_bytes(), 64).unwrap();
        assert_eq!(keys.len(), 1);
    }
}
