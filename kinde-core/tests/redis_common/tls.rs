//! The TLS servers of `scripts/redis-up.sh` and the certificates it generated.

use std::path::PathBuf;

use super::env_or_skip;

/// The TLS servers and the PEM files for them.
pub struct Tls {
    /// TLS, no client certificate needed.
    pub url: String,
    /// TLS, a client certificate required (mutual TLS).
    pub mtls_url: String,
    /// The CA of every server's and the client's certificate.
    pub ca: Vec<u8>,
    pub ca_path: PathBuf,
    /// The client certificate and its key.
    pub client_cert: Vec<u8>,
    pub client_key: Vec<u8>,
    /// An unrelated CA: nothing here is signed by it.
    pub other_ca: Vec<u8>,
    /// The servers' key (redis-up.sh writes it beside the CA): a key that does not belong to the
    /// client certificate.
    pub server_key: Vec<u8>,
}

/// Does what an application must do in a build that compiles two rustls providers in (e.g.
/// `--features redis,rust-crypto`): install one, before building a `rediss://` store. Does
/// nothing in the other builds, where rustls chooses by itself (`tests/redis_tls_provider.rs`
/// covers both).
pub fn as_an_application_would() {
    let two = cfg!(all(
        feature = "rust-crypto",
        any(feature = "aws-lc-rs", feature = "http-jwks")
    ));
    if two && rustls::crypto::CryptoProvider::get_default().is_none() {
        #[cfg(feature = "aws-lc-rs")]
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        #[cfg(not(feature = "aws-lc-rs"))]
        let provider = rustls::crypto::ring::default_provider();
        // Another test may have won the race: either way one is installed.
        let _ = provider.install_default();
    }
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The TLS servers, or `None` (after saying why) when the test should skip.
pub fn tls() -> Option<Tls> {
    as_an_application_would();
    let url = env_or_skip("KINDE_TEST_REDIS_TLS_URL")?;
    let mtls_url = env_or_skip("KINDE_TEST_REDIS_MTLS_URL")?;
    let ca_path = env_or_skip("KINDE_TEST_REDIS_TLS_CA")?;
    let cert = env_or_skip("KINDE_TEST_REDIS_TLS_CLIENT_CERT")?;
    let key = env_or_skip("KINDE_TEST_REDIS_TLS_CLIENT_KEY")?;
    let other = env_or_skip("KINDE_TEST_REDIS_TLS_OTHER_CA")?;
    let ca_path = PathBuf::from(ca_path);
    let server_key = ca_path.with_file_name("server.key");
    Some(Tls {
        url,
        mtls_url,
        ca: read(ca_path.to_str().unwrap()),
        server_key: read(server_key.to_str().unwrap()),
        ca_path,
        client_cert: read(&cert),
        client_key: read(&key),
        other_ca: read(&other),
    })
}
