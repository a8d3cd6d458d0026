//! RSA keys for tests: three 2048-bit fixtures (no generation cost) and generation on demand.

use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
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
    encoding: EncodingKey,
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
        crate::install_crypto_provider();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let public = private.to_public_key();
        let private_pem = private.to_pkcs8_pem(LineEnding::LF)?.to_string();
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .map_err(rsa::pkcs8::Error::PublicKey)?;
        let der = private
            .to_pkcs1_der()
            .map_err(|_| rsa::pkcs8::Error::KeyMalformed)?;
        let encoding = EncodingKey::from_rsa_der(der.as_bytes());
        Ok(Self(Arc::new(KeyParts {
            kid: kid.to_owned(),
            n: b64.encode(public.n().to_bytes_be()),
            e: b64.encode(public.e().to_bytes_be()),
            private_pem,
            public_pem,
            encoding,
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
            encoding: p.encoding.clone(),
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

    /// Signs claims with any header (its `alg` must be an RSA algorithm).
    pub fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.0.encoding).expect("signing with a test key")
    }
}
