//! RSA keys for tests: three 2048-bit fixtures (no generation cost) and generation on demand.
//!
//! Tokens are signed with the crypto backend kinde-core verifies with (aws-lc-rs, else RustCrypto),
//! never through jsonwebtoken, so the test kit works whatever an application enables on its own
//! jsonwebtoken.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

const PRIMARY: &str = include_str!("keys/primary.pem");
const SECONDARY: &str = include_str!("keys/secondary.pem");
const ATTACKER: &str = include_str!("keys/attacker.pem");

/// An RSA signing key with its `kid`.
#[derive(Clone)]
pub struct TestKey(Arc<KeyParts>);

struct KeyParts {
    kid: String,
    private_pem: String,
    public_pem: String,
    n: String,
    e: String,
    signer: signer::Signer,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey").field("kid", &self.0.kid).finish()
    }
}

impl TestKey {
    /// The fixture key a [`super::TestIssuer`] signs with by default.
    pub fn primary() -> Self {
        Self::from_pem("test-primary", PRIMARY).expect("fixture key")
    }

    /// A second fixture key (for rotation).
    pub fn secondary() -> Self {
        Self::from_pem("test-secondary", SECONDARY).expect("fixture key")
    }

    /// A fixture key that no issuer publishes: tokens it signs are forgeries.
    pub fn attacker() -> Self {
        Self::from_pem("test-attacker", ATTACKER).expect("fixture key")
    }

    /// A key from a PKCS#8 PEM private key.
    pub fn from_pem(kid: &str, pem: &str) -> Result<Self, rsa::pkcs8::Error> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem)?;
        Self::from_private(kid, private)
    }

    /// Generates a fresh key. Slow in unoptimised builds (seconds): prefer the fixtures in tests.
    pub fn generate(kid: &str, bits: usize) -> Self {
        let private =
            RsaPrivateKey::new(&mut rand::thread_rng(), bits).expect("RSA key generation");
        Self::from_private(kid, private).expect("generated key encodes")
    }

    fn from_private(kid: &str, private: RsaPrivateKey) -> Result<Self, rsa::pkcs8::Error> {
        let public = private.to_public_key();
        let private_pem = private.to_pkcs8_pem(LineEnding::LF)?.to_string();
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .map_err(rsa::pkcs8::Error::PublicKey)?;
        let signer = signer::Signer::new(&private)?;
        Ok(Self(Arc::new(KeyParts {
            kid: kid.to_owned(),
            n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            private_pem,
            public_pem,
            signer,
        })))
    }

    /// The same key material under another `kid`.
    pub fn with_kid(&self, kid: &str) -> Self {
        let p = &self.0;
        Self(Arc::new(KeyParts {
            kid: kid.to_owned(),
            private_pem: p.private_pem.clone(),
            public_pem: p.public_pem.clone(),
            n: p.n.clone(),
            e: p.e.clone(),
            signer: p.signer.clone(),
        }))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.0.kid
    }

    /// The private key, PKCS#8 PEM.
    pub fn private_pem(&self) -> &str {
        &self.0.private_pem
    }

    /// The public key, SPKI PEM (what an HS256 key-confusion attack uses as the secret).
    pub fn public_pem(&self) -> &str {
        &self.0.public_pem
    }

    /// The public key as a JWK (`kty=RSA`, `use=sig`, `alg=RS256`).
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.0.kid, "n": self.0.n, "e": self.0.e})
    }

    /// Signs claims with RS256 under this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.0.kid.clone());
        self.sign_with_header(&header, claims)
    }

    /// Signs claims under any header, as given: the header is serialised as it is (its `alg`
    /// may say anything, `kid` may be missing) and the signature is always this key's RS256
    /// one. For tokens that claim another algorithm, or carry parameters to be refused.
    pub fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        let header = serde_json::to_vec(header).expect("a header serialises");
        self.sign_raw(&header, claims.to_string().as_bytes())
    }

    /// Signs a header and a payload given as raw JSON bytes (base64url-encoded here), with
    /// RS256: for headers no [`Header`] can express (repeated names, odd types).
    pub fn sign_raw(&self, header_json: &[u8], payload_json: &[u8]) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(payload_json)
        );
        let signature = self.sign_bytes(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The RS256 (RSASSA-PKCS1-v1_5, SHA-256) signature of `message`.
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.0.signer.sign(message)
    }
}

/// An HS256 token under `header` (serialised as given, its `alg` included) with `secret`: the
/// shape of a key-confusion forgery (`secret` = an issuer's public key PEM).
pub fn sign_hs256(header: &Header, claims: &Value, secret: &[u8]) -> String {
    let header = serde_json::to_vec(header).expect("a header serialises");
    hs256_raw(&header, claims.to_string().as_bytes(), secret)
}

fn hs256_raw(header_json: &[u8], payload_json: &[u8], secret: &[u8]) -> String {
    use hmac::Mac as _;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(payload_json)
    );
    let mut mac = hmac::Hmac::<rsa::sha2::Sha256>::new_from_slice(secret)
        .expect("HMAC takes keys of any length");
    mac.update(signing_input.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

mod signer {
    use rsa::pkcs1v15::SigningKey;
    use rsa::sha2::Sha256;
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    use rsa::RsaPrivateKey;

    /// The key, parsed once for signing: by aws-lc-rs when it is compiled in and takes the key
    /// (2048–8192 bits), else by RustCrypto (any size, e.g. a 1024-bit key a test wants refused).
    #[derive(Clone)]
    pub(super) enum Signer {
        #[cfg(feature = "aws-lc-rs")]
        AwsLc(std::sync::Arc<aws_lc_rs::signature::RsaKeyPair>),
        RustCrypto(std::sync::Arc<SigningKey<Sha256>>),
    }

    impl Signer {
        pub(super) fn new(private: &RsaPrivateKey) -> Result<Self, rsa::pkcs8::Error> {
            #[cfg(feature = "aws-lc-rs")]
            {
                use rsa::pkcs8::EncodePrivateKey as _;
                let der = private.to_pkcs8_der()?;
                if let Ok(pair) = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.as_bytes()) {
                    return Ok(Self::AwsLc(std::sync::Arc::new(pair)));
                }
            }
            Ok(Self::RustCrypto(std::sync::Arc::new(SigningKey::new(
                private.clone(),
            ))))
        }

        pub(super) fn sign(&self, message: &[u8]) -> Vec<u8> {
            match self {
                #[cfg(feature = "aws-lc-rs")]
                Self::AwsLc(pair) => {
                    let mut signature = vec![0; pair.public_modulus_len()];
                    pair.sign(
                        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                        &aws_lc_rs::rand::SystemRandom::new(),
                        message,
                        &mut signature,
                    )
                    .expect("signing with a test key");
                    signature
                }
                Self::RustCrypto(key) => key.sign(message).to_vec(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::sha2::Sha256;
    use rsa::signature::Verifier as _;

    use super::*;

    #[test]
    fn keys_of_any_size_sign_standard_rs256() {
        for key in [TestKey::primary(), TestKey::generate("small", 1024)] {
            let private = RsaPrivateKey::from_pkcs8_pem(key.private_pem()).unwrap();
            let public = VerifyingKey::<Sha256>::new(private.to_public_key());
            let signature = key.sign_bytes(b"header.payload");
            let signature = Signature::try_from(signature.as_slice()).unwrap();
            assert!(public.verify(b"header.payload", &signature).is_ok());
            assert!(public.verify(b"header.payloaD", &signature).is_err());
        }
    }

    #[test]
    fn hs256_matches_rfc_7515_appendix_a1() {
        let key = URL_SAFE_NO_PAD
            .decode(
                "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
            )
            .unwrap();
        let header = b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
        let payload =
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
        assert_eq!(
            hs256_raw(header, payload, &key),
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
             .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
             .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
    }
}
