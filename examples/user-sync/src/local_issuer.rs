//! Local development only (feature `local-issuer`, on by default): a Kinde issuer in this
//! process, so `cargo run -p user-sync` needs no Kinde account and no network.
//!
//! A fresh RSA key is made on every start, published at the issuer's JWKS on a loopback port,
//! and written as a PEM file to a keys directory, where `kinde-webhooks send --keys DIR`
//! reads it (the CLI names a key by Kinde's `kid` for it: the MD5 of its public key's DER).
//! Nothing here belongs in a production build: build with `--no-default-features` and set
//! `KINDE_DOMAIN`.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kinde_core::testing::{TestIssuer, TestKey};
use md5::{Digest as _, Md5};

/// The key's file in the keys directory.
const KEY_FILE: &str = "user-sync-local.pem";

/// A running local issuer; it serves its JWKS for as long as this lives.
pub struct LocalIssuer {
    /// `http://127.0.0.1:PORT`: the issuer to trust.
    pub url: String,
    /// Where its signing key was written.
    pub key_file: PathBuf,
    _issuer: TestIssuer,
}

/// Makes a key, writes it to `keys_dir` and serves its JWKS on a free loopback port.
pub async fn start(keys_dir: &Path) -> Result<LocalIssuer, String> {
    let key = TestKey::generate("pending", 2048);
    let key = key.with_kid(&kinde_kid(key.public_pem())?);
    std::fs::create_dir_all(keys_dir)
        .map_err(|e| format!("cannot create {}: {e}", keys_dir.display()))?;
    let key_file = keys_dir.join(KEY_FILE);
    std::fs::write(&key_file, key.private_pem())
        .map_err(|e| format!("cannot write {}: {e}", key_file.display()))?;
    let issuer = TestIssuer::with_key(key);
    let url = issuer.serve().await.url();
    Ok(LocalIssuer {
        url,
        key_file,
        _issuer: issuer,
    })
}

/// Kinde's `kid` for a public key (SPKI PEM): the MD5 of its DER, as colon-separated hex pairs.
fn kinde_kid(spki_pem: &str) -> Result<String, String> {
    let body: String = spki_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body)
        .map_err(|e| format!("cannot read the public key: {e}"))?;
    let hex: Vec<String> = Md5::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(hex.join(":"))
}
