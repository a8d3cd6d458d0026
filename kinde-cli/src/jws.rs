//! Compact JWS by hand: reading one without verifying (`decode`), and building the unsigned
//! (`alg: none`) and HS256 tokens of `doctor`'s probes, which no RSA key can sign.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;

/// A token's header and payload, read without checking anything else.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// The JOSE header (a JSON object).
    pub header: Value,
    /// The payload, as JSON.
    pub payload: Value,
}

/// Reads a compact JWS (`header.payload.signature`, base64url): the header must be a JSON
/// object, the payload JSON. The signature is not looked at.
pub fn decode(token: &str) -> Result<Decoded, String> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, payload, _signature] = parts[..] else {
        return Err(format!(
            "not a JWS: a compact JWS has 3 dot-separated parts, this has {}",
            parts.len()
        ));
    };
    let part = |name: &str, b64: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|_| format!("not a JWS: the {name} is not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| format!("not a JWS: the {name} is not JSON"))
    };
    let header = part("header", header)?;
    if !header.is_object() {
        return Err("not a JWS: the header is not a JSON object".into());
    }
    let payload = part("payload", payload)?;
    Ok(Decoded { header, payload })
}

fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

/// `header.payload.` with an empty signature (what `alg: none` means).
pub fn unsigned(header: &Value, payload: &Value) -> String {
    format!("{}.", signing_input(header, payload))
}

/// `header.payload.signature` with an HMAC-SHA256 signature keyed with `secret`.
pub fn hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, payload);
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(input.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signed_token_decodes_to_its_header_and_payload() {
        let key = kinde_core::testing::TestKey::primary();
        let token = key.sign(&json!({"type": "user.created"}));
        let d = decode(&format!("  {token}\n")).unwrap();
        assert_eq!(d.header["alg"], "RS256");
        assert_eq!(d.header["kid"], key.kid());
        assert_eq!(d.payload, json!({"type": "user.created"}));
    }

    #[test]
    fn what_is_not_a_jws_says_why() {
        for (bad, why) in [
            ("", "3 dot-separated parts"),
            ("a.b", "3 dot-separated parts"),
            ("a.b.c.d", "3 dot-separated parts"),
            ("%%.e30.x", "header is not base64url"),
            ("bm90IGpzb24.e30.x", "header is not JSON"),
            ("WzFd.e30.x", "header is not a JSON object"),
            ("e30.bm90IGpzb24.x", "payload is not JSON"),
        ] {
            let err = decode(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn hand_built_tokens_round_trip_and_hs256_verifies_with_its_key_only() {
        let header = json!({"alg": "none"});
        let payload = json!({"a": 1});
        let none = unsigned(&header, &payload);
        assert!(none.ends_with('.'));
        assert_eq!(decode(&none).unwrap().payload, payload);

        let header = json!({"alg": "HS256", "typ": "JWT"});
        let token = hs256(&header, &payload, b"secret");
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut mac = <Hmac<Sha256>>::new_from_slice(b"secret").unwrap();
        mac.update(input.as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap())
            .unwrap();
        let mut other = <Hmac<Sha256>>::new_from_slice(b"other").unwrap();
        other.update(input.as_bytes());
        assert!(other
            .verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap())
            .is_err());
    }
}
