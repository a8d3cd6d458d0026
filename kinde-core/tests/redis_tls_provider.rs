//! `rediss://` and rustls's process-level crypto provider, in a process of its own (nothing else
//! here touches rustls, so nothing has installed a provider yet). Whatever the feature set this
//! is built with, `RedisStore::new` must refuse `rediss://` exactly when rustls cannot choose a
//! provider by itself (and a first connection would panic inside rustls), and accept it
//! otherwise; and once the application installs a provider, TLS works.
//!
//! ```text
//! cargo test -p kinde-core --features redis --test redis_tls_provider               # one provider
//! cargo test -p kinde-core --features redis,rust-crypto --test redis_tls_provider   # two
//! ```

#![cfg(feature = "redis")]

mod redis_common;

use std::time::Duration;

use kinde_core::store::{RedisConfigError, RedisStore, RedisStoreConfig};
use rustls::crypto::CryptoProvider;

/// Whether rustls can choose a provider by itself: `ClientConfig::builder()` panics when it
/// cannot (and installs the one it chose when it can, which this test process may do).
fn rustls_can_choose() -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let chose = std::panic::catch_unwind(|| drop(rustls::ClientConfig::builder())).is_ok();
    std::panic::set_hook(hook);
    chose
}

/// A provider compiled into this build, for the application's part.
fn a_provider() -> CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc-rs"))]
    return rustls::crypto::ring::default_provider();
}

#[tokio::test]
async fn rediss_is_refused_exactly_when_rustls_cannot_choose_a_provider() {
    assert!(
        CryptoProvider::get_default().is_none(),
        "something in this process installed a provider first"
    );
    let tls_config = |url: &str| RedisStoreConfig::new(url).connect_timeout(Duration::from_secs(5));
    let built = RedisStore::new(tls_config("rediss://127.0.0.1:1"));
    // Plain Redis never needs a provider.
    assert!(!RedisStore::open("redis://127.0.0.1:1").unwrap().is_tls());
    let can_choose = rustls_can_choose();
    eprintln!(
        "rustls can choose a provider: {can_choose}; RedisStore::new(rediss://): {:?}",
        built.as_ref().map(|_| ()).map_err(|e| e.to_string())
    );
    match built {
        Ok(s) => {
            assert!(
                can_choose,
                "RedisStore::new accepted rediss:// although rustls cannot choose a provider: \
                 the first connection would panic"
            );
            assert!(s.is_tls());
        }
        Err(e) => {
            assert!(
                !can_choose,
                "RedisStore::new refused rediss:// although rustls can choose: {e}"
            );
            assert!(matches!(e, RedisConfigError::TlsProviderAmbiguous), "{e}");
            assert!(
                e.to_string()
                    .contains("rustls::crypto::CryptoProvider::install_default"),
                "{e}"
            );
            // The fix it names works.
            a_provider().install_default().unwrap();
            assert!(RedisStore::new(tls_config("rediss://127.0.0.1:1")).is_ok());
        }
    }

    // And a real TLS connection works now, either way.
    let Some(tls) = redis_common::tls::tls() else {
        return;
    };
    let s = RedisStore::new(
        tls_config(&tls.url)
            .tls_ca_pem(tls.ca)
            .command_timeout(Duration::from_secs(5))
            .key_prefix(redis_common::unique_prefix()),
    )
    .unwrap();
    s.ping().await.unwrap();
    let t = redis_common::started(
        redis_common::claim(&s, "e1", redis_common::LONG)
            .await
            .unwrap(),
    );
    redis_common::release(&s, "e1", &t).await.unwrap();
}
