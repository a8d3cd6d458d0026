//! The keys directory: RSA private keys as PEM files, each known by a Kinde-style `kid` (the MD5
//! of its SPKI DER as colon-separated hex pairs); the newest file signs.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use kinde_core::testing::TestKey;
use md5::{Digest as _, Md5};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPrivateKey, RsaPublicKey};

/// Size of the keys `issuer` creates.
pub const NEW_KEY_BITS: usize = 2048;

/// A key of the directory.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// Where it lives.
    pub path: PathBuf,
    /// The key, under its Kinde-style kid.
    pub key: TestKey,
    /// Its file's modification time (the newest signs).
    pub modified: SystemTime,
}

/// Kinde's `kid` for a public key: the MD5 of its SPKI DER, as colon-separated lowercase hex
/// pairs (`4d:95:5d:cb:…`, 16 pairs).
pub fn kid_of(public: &RsaPublicKey) -> Result<String, String> {
    let der = public
        .to_public_key_der()
        .map_err(|e| format!("cannot encode the public key: {e}"))?;
    let digest = Md5::digest(der.as_bytes());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Reads one PEM file: a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) RSA
/// private key of 2048–4096 bits (what a receiver accepts).
pub fn load_file(path: &Path) -> Result<KeyFile, String> {
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    let pem = fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let private = RsaPrivateKey::from_pkcs8_pem(&pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
        .map_err(|_| {
            format!("{shown}: not an RSA private key (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY` PEM)")
        })?;
    let bits = private.size() * 8;
    if !kinde_core::verify::MODULUS_BITS.contains(&bits) {
        return Err(format!(
            "{shown}: a {bits}-bit key; receivers accept 2048 to 4096 bits"
        ));
    }
    let kid = kid_of(&private.to_public_key())?;
    let pkcs8 = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("{shown}: {e}"))?;
    let key = TestKey::from_pem(&kid, &pkcs8).map_err(|e| format!("{shown}: {e}"))?;
    Ok(KeyFile {
        path: path.to_owned(),
        key,
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

/// The `.pem` files of `dir`, sorted by name (other files are ignored).
pub fn pem_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("--keys {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("--keys {}: {e}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "pem") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every key of `dir`, oldest first (by modification time, then file name): the last signs.
pub fn load_dir(dir: &Path) -> Result<Vec<KeyFile>, String> {
    let mut keys = pem_files(dir)?
        .iter()
        .map(|p| load_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    keys.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
    Ok(keys)
}

/// The key that signs: the newest of `dir`.
pub fn signer(dir: &Path) -> Result<KeyFile, String> {
    load_dir(dir)?.pop().ok_or_else(|| {
        format!(
            "--keys {}: no key (*.pem) there; `kinde-webhooks issuer --keys {}` creates one",
            dir.display(),
            dir.display()
        )
    })
}

/// Creates `dir` if needed and, if it holds no key, one new 2048-bit key. Returns whether a key
/// was created.
pub fn ensure_key(dir: &Path) -> Result<bool, String> {
    create_dir(dir)?;
    if !pem_files(dir)?.is_empty() {
        return Ok(false);
    }
    let private = RsaPrivateKey::new(&mut rand::thread_rng(), NEW_KEY_BITS)
        .map_err(|e| format!("cannot generate an RSA key: {e}"))?;
    let kid = kid_of(&private.to_public_key())?;
    let pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the new key: {e}"))?;
    let name = format!("key-{}.pem", kid.replace(':', "").get(..8).unwrap_or("new"));
    write_private(&dir.join(name), pem.as_bytes())?;
    Ok(true)
}

fn create_dir(dir: &Path) -> Result<(), String> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| format!("--keys {}: cannot create it: {e}", dir.display()))
}

/// Writes a private key readable by its owner only, through a temporary file renamed into
/// place (a concurrent reader never sees half a key: it ignores non-`.pem` names).
fn write_private(path: &Path, pem: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("pem.tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = || -> std::io::Result<()> {
        let mut file = options.open(&tmp)?;
        file.write_all(pem)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// The SPKI PEM of a JWK's RSA public key (`n`, `e` base64url).
pub fn public_pem_of_jwk(n: &str, e: &str) -> Option<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let n = b64.decode(n.trim_end_matches('=')).ok()?;
    let e = b64.decode(e.trim_end_matches('=')).ok()?;
    let key = RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    )
    .ok()?;
    key.to_public_key_pem(LineEnding::LF).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePublicKey as _;

    #[test]
    fn kid_is_md5_of_spki_der_as_hex_pairs() {
        let key = TestKey::primary();
        let public = RsaPublicKey::from_public_key_pem(key.public_pem()).unwrap();
        let kid = kid_of(&public).unwrap();
        assert_eq!(kid.len(), 47, "{kid}");
        assert!(kid.split(':').all(|p| p.len() == 2
            && p.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())));
        let der = public.to_public_key_der().unwrap();
        let expected: String = Md5::digest(der.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(kid.replace(':', ""), expected);
        // Another key, another kid.
        let other = RsaPublicKey::from_public_key_pem(TestKey::secondary().public_pem()).unwrap();
        assert_ne!(kid_of(&other).unwrap(), kid);
    }

    #[test]
    fn a_jwk_turns_back_into_its_public_pem() {
        let key = TestKey::primary();
        let jwk = key.jwk();
        let pem = public_pem_of_jwk(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap());
        assert_eq!(pem.as_deref(), Some(key.public_pem()));
        assert_eq!(public_pem_of_jwk("%%", "AQAB"), None);
    }

    #[test]
    fn the_newest_file_signs_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("b-old.pem");
        let new = dir.path().join("a-new.pem");
        fs::write(&old, TestKey::primary().private_pem()).unwrap();
        fs::write(&new, TestKey::secondary().private_pem()).unwrap();
        fs::write(dir.path().join("notes.txt"), "not a key").unwrap();
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let keys = load_dir(dir.path()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(signer(dir.path()).unwrap().path, new);
        assert!(!ensure_key(dir.path()).unwrap(), "keys exist: none created");
    }

    #[test]
    fn a_file_that_is_not_a_key_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("pub.pem"), TestKey::primary().public_pem()).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            err.contains("pub.pem") && err.contains("not an RSA private key"),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = signer(empty.path()).unwrap_err();
        assert!(err.contains("no key"), "{err}");
    }
}
