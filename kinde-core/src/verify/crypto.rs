//! RS256 (RSASSA-PKCS1-v1_5 with SHA-256) through the crypto backend of this build, called
//! directly: aws-lc-rs (feature `aws-lc-rs`, preferred when both are enabled) or RustCrypto's
//! `rsa` + `sha2` (feature `rust-crypto`).
//!
//! jsonwebtoken is not involved, so whatever backend an application enables on its own
//! jsonwebtoken, ours keeps working and theirs behaves as if we were not there.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "kinde-core needs a crypto backend: enable the `aws-lc-rs` (default) or `rust-crypto` feature"
);

/// The backend that verifies signatures in this build: `"aws-lc-rs"` or `"rust-crypto"`.
pub(crate) const BACKEND: &str = backend::NAME;

/// The longest RS256 signature we can meet, in bytes (RSA-4096).
pub(crate) const MAX_SIGNATURE_LEN: usize = 512;

/// An RSA public key of the issuer's JWKS, parsed once by the crypto backend when the key set
/// is loaded, then used for every delivery signed by it.
pub struct VerifyingKey {
    key: backend::Key,
    modulus_bits: usize,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("backend", &BACKEND)
            .field("modulus_bits", &self.modulus_bits)
            .finish()
    }
}

impl VerifyingKey {
    /// Parses big-endian `n` and `e` (no leading zeros). `None` if the backend refuses them.
    pub(crate) fn from_components(n: &[u8], e: &[u8], modulus_bits: usize) -> Option<Self> {
        Some(Self {
            key: backend::parse(n, e)?,
            modulus_bits,
        })
    }

    /// Whether `signature` is a valid RS256 signature of `message` (for a JWS: the ASCII
    /// `header.payload`, and the signature's base64url-decoded bytes).
    pub fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        backend::verify(&self.key, message, signature)
    }

    /// The size of the modulus, in bits.
    pub fn modulus_bits(&self) -> usize {
        self.modulus_bits
    }
}

#[cfg(feature = "aws-lc-rs")]
mod backend {
    use aws_lc_rs::signature::{
        ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256,
    };

    pub(super) const NAME: &str = "aws-lc-rs";

    pub(super) struct Key(ParsedPublicKey);

    pub(super) fn parse(n: &[u8], e: &[u8]) -> Option<Key> {
        RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .ok()
            .map(Key)
    }

    pub(super) fn verify(key: &Key, message: &[u8], signature: &[u8]) -> bool {
        #[cfg(feature = "testing")]
        super::counters::AWS_LC_RS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        key.0.verify_sig(message, signature).is_ok()
    }
}

#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
mod backend {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::sha2::Sha256;
    use rsa::signature::Verifier as _;
    use rsa::{BigUint, RsaPublicKey};

    pub(super) const NAME: &str = "rust-crypto";

    pub(super) struct Key(VerifyingKey<Sha256>);

    pub(super) fn parse(n: &[u8], e: &[u8]) -> Option<Key> {
        let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)).ok()?;
        Some(Key(VerifyingKey::new(key)))
    }

    pub(super) fn verify(key: &Key, message: &[u8], signature: &[u8]) -> bool {
        #[cfg(feature = "testing")]
        super::counters::RUST_CRYPTO.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match Signature::try_from(signature) {
            Ok(signature) => key.0.verify(message, &signature).is_ok(),
            Err(_) => false,
        }
    }
}

/// Signatures checked per backend, for the test kit (a real count of calls into each backend,
/// so a test can tell which one verified).
#[cfg(feature = "testing")]
pub(crate) mod counters {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Incremented by the aws-lc-rs backend's verify, and nothing else.
    pub(crate) static AWS_LC_RS: AtomicU64 = AtomicU64::new(0);
    /// Incremented by the RustCrypto backend's verify, and nothing else.
    pub(crate) static RUST_CRYPTO: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn read() -> (u64, u64) {
        (
            AWS_LC_RS.load(Ordering::Relaxed),
            RUST_CRYPTO.load(Ordering::Relaxed),
        )
    }
}
