//! TLS (`rediss://`): everything is checked when the store is built, so that a connection can
//! only fail for reasons outside the configuration (the network, the server, its certificate).
//!
//! redis-rs builds its rustls `ClientConfig` per connection with rustls's *process-level*
//! crypto provider (it takes no provider of its own). kinde-core enables a provider feature in
//! rustls for its crypto feature (aws-lc-rs with `aws-lc-rs`, ring with `rust-crypto`), so
//! that with one of them rustls can pick it when nothing is installed. Where the build compiles
//! in two and none is installed, rustls would panic at the first connection: [`check`] refuses
//! that configuration instead. This module never installs or changes the process-level
//! provider.

use std::sync::Arc;

use ::redis::{ClientTlsConfig, TlsCertificates};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::{RedisConfigError, RedisStoreConfig, TlsSettings};

/// Whether this build of kinde-core puts two providers into rustls, so that rustls cannot
/// choose one by itself: `rust-crypto` adds ring, while `aws-lc-rs` adds aws-lc-rs and so does
/// `http-jwks` (reqwest 0.13's `rustls` feature). `tests/redis_tls_provider.rs` checks this
/// claim against rustls itself in whichever feature set it is built with.
pub(super) const BUILD_HAS_TWO_PROVIDERS: bool = cfg!(all(
    feature = "rust-crypto",
    any(feature = "aws-lc-rs", feature = "http-jwks")
));

/// A message for an error without a source.
#[derive(Debug)]
struct Reason(&'static str);

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Reason {}

fn invalid(
    what: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> RedisConfigError {
    move |source| RedisConfigError::InvalidTls { what, source }
}

/// Whether the store uses TLS, after checking that the URLs and the TLS settings agree and
/// that every connection will have a trust store, a usable client certificate (if any) and a
/// crypto provider. Reads the platform trust store (a few files) when TLS is used.
pub(super) fn check(config: &RedisStoreConfig) -> Result<bool, RedisConfigError> {
    let mut tls_urls = 0;
    for (index, url) in config.urls.iter().enumerate() {
        // Unparseable URLs are reported by redis-rs, with its reason, afterwards.
        let Ok(parsed) = url::Url::parse(url) else {
            continue;
        };
        if parsed.scheme() == "rediss" {
            tls_urls += 1;
            if parsed.fragment() == Some("insecure") {
                return Err(RedisConfigError::InsecureTls { index });
            }
        } else if config.tls.is_set() {
            return Err(RedisConfigError::TlsNeedsRediss { index });
        }
    }
    if tls_urls == 0 {
        return Ok(false);
    }
    // What the application gave first, then what the process and the platform provide.
    let ca = config.tls.ca_pem.as_deref().map(ca_bundle).transpose()?;
    let client = config
        .tls
        .client_pem
        .as_ref()
        .map(client_cert)
        .transpose()?;
    let provider = match CryptoProvider::get_default() {
        Some(installed) => installed.clone(),
        None if BUILD_HAS_TWO_PROVIDERS => return Err(RedisConfigError::TlsProviderAmbiguous),
        None => Arc::new(own_provider()),
    };
    let platform = platform_roots()?;
    let roots = match ca {
        Some(ca) => ca,
        None if platform.is_empty() => {
            return Err(RedisConfigError::PlatformTrustStore {
                source: Box::new(Reason(
                    "it holds no CA certificate, so no server certificate could be verified",
                )),
            })
        }
        None => platform,
    };
    // The configuration each connection will build, made once here with an explicit provider
    // (nothing process-wide is touched) to find out whether it can be built at all: this is
    // where a key that is not the certificate's is found.
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("configuration")(Box::new(e)))?
        .with_root_certificates(roots);
    match client {
        None => drop(builder.with_no_client_auth()),
        Some((chain, key)) => drop(
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid("client certificate and key")(Box::new(e)))?,
        ),
    }
    Ok(true)
}

/// The CA bundle given with `tls_ca_pem`: at least one certificate, every one usable.
fn ca_bundle(pem: &[u8]) -> Result<RootCertStore, RedisConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| invalid("CA bundle")(Box::new(e)))?;
        roots
            .add(cert)
            .map_err(|e| invalid("CA bundle")(Box::new(e)))?;
    }
    if roots.is_empty() {
        return Err(invalid("CA bundle")(Box::new(Reason(
            "the PEM holds no CERTIFICATE block",
        ))));
    }
    Ok(roots)
}

/// The client certificate chain and key given with `tls_client_cert_pem`.
fn client_cert(
    (cert_pem, key_pem): &(Vec<u8>, Vec<u8>),
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), RedisConfigError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("client certificate")(Box::new(e)))?;
    if chain.is_empty() {
        return Err(invalid("client certificate")(Box::new(Reason(
            "the PEM holds no CERTIFICATE block",
        ))));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid("client key")(Box::new(e)))?;
    Ok((chain, key))
}

/// The platform's trust store. redis-rs loads it on every connection, even when a CA bundle
/// replaces it, and fails the connection on any error doing so or on any certificate rustls
/// refuses: such a failure is reported here, once, instead.
fn platform_roots() -> Result<RootCertStore, RedisConfigError> {
    let platform_error = |source: Box<dyn std::error::Error + Send + Sync>| {
        RedisConfigError::PlatformTrustStore { source }
    };
    let loaded = rustls_native_certs::load_native_certs();
    if let Some(e) = loaded.errors.into_iter().next() {
        return Err(platform_error(Box::new(e)));
    }
    let mut roots = RootCertStore::empty();
    for cert in loaded.certs {
        roots.add(cert).map_err(|e| platform_error(Box::new(e)))?;
    }
    Ok(roots)
}

/// The provider kinde-core compiled into rustls, for checking the configuration when none is
/// installed (aws-lc-rs when both are, though then [`check`] refuses before asking).
fn own_provider() -> CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc-rs"))]
    return rustls::crypto::ring::default_provider();
}

/// The TLS material in redis-rs's form, if any was configured (otherwise `rediss://` uses the
/// platform trust store and no client certificate).
pub(super) fn certificates(tls: &TlsSettings) -> Option<TlsCertificates> {
    tls.is_set().then(|| TlsCertificates {
        client_tls: tls.client_pem.as_ref().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.clone(),
        }),
        root_cert: tls.ca_pem.clone(),
    })
}
