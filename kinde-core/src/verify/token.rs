//! The compact JWS: its three parts, the protected header (read before any key is touched) and
//! base64url decoding into caller-provided stack buffers.

use std::borrow::Cow;
use std::str::FromStr as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::{DecodeSliceError, Engine as _};
use jsonwebtoken::Algorithm;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::VerifyError;

/// The parts of `header.payload.signature`, borrowed from the body.
pub(super) struct Parts<'a> {
    pub(super) header: &'a [u8],
    pub(super) payload: &'a [u8],
    pub(super) signature: &'a [u8],
    /// `header.payload`: what the signature covers.
    pub(super) signing_input: &'a [u8],
}

/// Splits a compact JWS (exactly two dots), in one pass (`memchr`'s vectorised search).
pub(super) fn split(token: &[u8]) -> Result<Parts<'_>, VerifyError> {
    let mut dots = memchr::memchr_iter(b'.', token);
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(VerifyError::Malformed("not a compact JWS"));
    };
    Ok(Parts {
        header: &token[..first],
        payload: &token[first + 1..second],
        signature: &token[second + 1..],
        signing_input: &token[..second],
    })
}

/// base64url (no padding, canonical) into `stack` when it fits, else into `heap`.
pub(super) fn decode<'b>(
    input: &[u8],
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> Result<&'b [u8], base64::DecodeError> {
    match URL_SAFE_NO_PAD.decode_slice(input, stack) {
        Ok(n) => Ok(&stack[..n]),
        Err(DecodeSliceError::OutputSliceTooSmall) => {
            *heap = URL_SAFE_NO_PAD.decode(input)?;
            Ok(heap)
        }
        Err(DecodeSliceError::DecodeError(e)) => Err(e),
    }
}

/// The signature's bytes, in `buf`. Longer than any key we accept can sign: invalid.
pub(super) fn decode_signature<'b>(
    input: &[u8],
    buf: &'b mut [u8; super::crypto::MAX_SIGNATURE_LEN],
) -> Result<&'b [u8], VerifyError> {
    match URL_SAFE_NO_PAD.decode_slice(input, buf) {
        Ok(n) => Ok(&buf[..n]),
        Err(DecodeSliceError::OutputSliceTooSmall) => Err(VerifyError::InvalidSignature),
        Err(DecodeSliceError::DecodeError(_)) => Err(VerifyError::Malformed("bad base64 in token")),
    }
}

/// Whether a header parameter is present, whatever its value (`null` included).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// An optional string claim or header parameter, borrowed from the decoded JSON unless it has
/// escapes. (`#[serde(borrow)]` alone does not borrow through an `Option`: an
/// `Option<Cow<str>>` field would always be copied.)
pub(super) fn borrowed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Borrowed<'de>>::deserialize(d).map(|o| o.map(|b| b.0))
}

/// The protected header, as far as we read it; other parameters (`typ`, `jwk`, `x5c`, …) are
/// ignored: key material in a token never chooses the key. A repeated name is an error.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    kid: Option<Cow<'a, str>>,
    /// RFC 7515 §4.1.11: extensions the recipient must understand. We understand none.
    #[serde(default)]
    crit: Present,
    /// RFC 7797 (`b64: false`: an unencoded payload). Its use requires `crit`; we refuse it
    /// with or without, since either way the signature would not cover what we read.
    #[serde(default)]
    b64: Present,
}

/// Reads the decoded header: RS256 only, no critical extension, a `kid`. Returns the `kid`.
pub(super) fn check_header(decoded: &[u8]) -> Result<Cow<'_, str>, VerifyError> {
    let header: Header<'_> = serde_json::from_slice(decoded)
        .map_err(|_| VerifyError::Malformed("unreadable token header"))?;
    let alg = Algorithm::from_str(&header.alg)
        .map_err(|_| VerifyError::Malformed("unreadable token header"))?;
    if alg != Algorithm::RS256 {
        return Err(VerifyError::UnsupportedAlgorithm(alg));
    }
    if header.crit.0 || header.b64.0 {
        return Err(VerifyError::UnsupportedCrit);
    }
    header.kid.ok_or(VerifyError::MissingKid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid(header: &str) -> Result<String, VerifyError> {
        check_header(header.as_bytes()).map(Cow::into_owned)
    }

    #[test]
    fn splits_on_exactly_two_dots() {
        let p = split(b"aa.bbb.c").unwrap();
        assert_eq!(
            (p.header, p.payload, p.signature, p.signing_input),
            (&b"aa"[..], &b"bbb"[..], &b"c"[..], &b"aa.bbb"[..])
        );
        assert!(split(b"..").is_ok());
        for bad in [&b""[..], b"a", b"a.b", b"a.b.c.d", b"...."] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers() {
        assert_eq!(
            kid(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#).unwrap(),
            "k1"
        );
        // Escapes are read (and then owned); a plain kid is borrowed from the header.
        assert_eq!(kid(r#"{"alg":"RS256","kid":"k\u0031"}"#).unwrap(), "k1");
        let plain = br#"{"alg":"RS256","kid":"k1"}"#;
        assert!(matches!(check_header(plain), Ok(Cow::Borrowed("k1"))));
        // Key material and other parameters are ignored.
        assert_eq!(
            kid(r#"{"alg":"RS256","kid":"k","jwk":{"kty":"RSA"},"x5c":["AA"],"typ":1}"#).unwrap(),
            "k"
        );
        let refused = |h: &str| kid(h).unwrap_err();
        assert!(matches!(
            refused(r#"{"alg":"RS256"}"#),
            VerifyError::MissingKid
        ));
        assert!(matches!(
            refused(r#"{"alg":"HS256","kid":"k"}"#),
            VerifyError::UnsupportedAlgorithm(Algorithm::HS256)
        ));
        for crit in [
            r#"{"alg":"RS256","kid":"k","crit":["exp"],"exp":1}"#,
            r#"{"alg":"RS256","kid":"k","crit":[]}"#,
            r#"{"alg":"RS256","kid":"k","crit":null}"#,
            r#"{"alg":"RS256","kid":"k","crit":["b64"],"b64":false}"#,
            r#"{"alg":"RS256","kid":"k","b64":false}"#,
            r#"{"alg":"RS256","kid":"k","b64":true}"#,
        ] {
            assert!(
                matches!(refused(crit), VerifyError::UnsupportedCrit),
                "{crit}"
            );
        }
        for malformed in [
            r#"{"alg":"none","kid":"k"}"#,
            r#"{"alg":"RS256","alg":"HS256","kid":"k"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"b"}"#,
            r#"{"alg":"RS256","kid":5}"#,
            r#"{"kid":"k"}"#,
            r#"[]"#,
            "",
        ] {
            assert!(
                matches!(refused(malformed), VerifyError::Malformed(_)),
                "{malformed}"
            );
        }
    }

    #[test]
    fn decoding_uses_the_stack_and_falls_back_to_the_heap() {
        let (mut stack, mut heap) = ([0u8; 4], Vec::new());
        let short = URL_SAFE_NO_PAD.encode(b"abc");
        assert_eq!(
            decode(short.as_bytes(), &mut stack, &mut heap).unwrap(),
            b"abc"
        );
        assert!(heap.is_empty());
        let long = URL_SAFE_NO_PAD.encode(b"abcdefgh");
        assert_eq!(
            decode(long.as_bytes(), &mut stack, &mut heap).unwrap(),
            b"abcdefgh"
        );
        assert!(decode(b"a=", &mut stack, &mut heap).is_err());
        // An RSA-4096 signature fits exactly; one byte more is no signature of ours.
        let mut sig = [0u8; super::super::crypto::MAX_SIGNATURE_LEN];
        let fits = URL_SAFE_NO_PAD.encode([7u8; 512]);
        assert_eq!(
            decode_signature(fits.as_bytes(), &mut sig).unwrap().len(),
            512
        );
        let over = URL_SAFE_NO_PAD.encode([7u8; 513]);
        assert!(matches!(
            decode_signature(over.as_bytes(), &mut sig),
            Err(VerifyError::InvalidSignature)
        ));
        assert!(matches!(
            decode_signature(b"***", &mut sig),
            Err(VerifyError::Malformed(_))
        ));
    }
}
