//! `rediss://` against the TLS servers of `scripts/redis-up.sh`: plain TLS, mutual TLS, the TLS
//! cluster, a CA that did not sign the server's certificate, and the platform trust store.

use std::sync::Arc;
use std::time::Duration;

use kinde_core::store::{
    Claim, Fenced, RedisConfigError, RedisStore, RedisStoreConfig, StoreError,
};
use kinde_core::testing::{TestEvent, TestIssuer};
use tokio::time::Instant;

use crate::cluster::{cluster_store, store_semantics};
use crate::redis_common::tls::{tls, Tls};
use crate::redis_common::{self, answer, deliver, started, Counter, GENEROUS, LONG};
use crate::{exactly_once_across_receivers, Unavailable};

/// Short bounds for stores expected to fail (a refused handshake must not take long to tell).
const FAILING: Duration = Duration::from_secs(2);

fn config(url: &str, bounds: Duration) -> RedisStoreConfig {
    RedisStoreConfig::new(url)
        .key_prefix(redis_common::unique_prefix())
        .command_timeout(bounds)
        .connect_timeout(bounds)
}

/// Two deliveries of one event through a receiver on `store`: handled, then duplicate.
async fn handled_then_duplicate(store: RedisStore) {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    let webhooks = redis_common::receiver(jwks.url(), store, &counter, |b| b);
    let ev = TestEvent::sample("user.created");
    let id = ev.id().to_owned();
    let token = issuer.sign(&ev.into_claims());
    assert_eq!(answer(&deliver(&webhooks, &token).await), (200, "handled"));
    assert_eq!(
        answer(&deliver(&webhooks, &token).await),
        (200, "duplicate")
    );
    assert_eq!(counter.runs(&id), 1);
}

/// A receiver on `store`, which cannot reach Redis: 503 and the handler never runs.
async fn refused(store: RedisStore) {
    let issuer = TestIssuer::new();
    let jwks = issuer.serve().await;
    let counter = Arc::new(Counter::default());
    let webhooks = redis_common::receiver(jwks.url(), store, &counter, |b| b);
    let token = issuer.sign(&TestEvent::sample("user.created").into_claims());
    for _ in 0..2 {
        assert_eq!(
            answer(&deliver(&webhooks, &token).await),
            (503, "store_unavailable")
        );
    }
    assert_eq!(counter.total(), 0);
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(e @ (StoreError::Unavailable(_) | StoreError::Timeout(_))) => e.to_string(),
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_with_a_ca_bundle() {
    let Some(tls) = tls() else {
        return;
    };
    let s = RedisStore::new(config(&tls.url, GENEROUS).tls_ca_pem(tls.ca.clone())).unwrap();
    assert!(s.is_tls() && !s.is_cluster());
    s.ping().await.unwrap();
    let t = started(redis_common::claim(&s, "e1", LONG).await.unwrap());
    assert_eq!(
        redis_common::claim(&s, "e1", LONG).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        redis_common::complete(&s, "e1", &t, LONG).await.unwrap(),
        Fenced::Applied
    );
    assert_eq!(
        redis_common::claim(&s, "e1", LONG).await.unwrap(),
        Claim::AlreadyHandled
    );
    handled_then_duplicate(
        RedisStore::new(config(&tls.url, GENEROUS).tls_ca_pem(tls.ca.clone())).unwrap(),
    )
    .await;

    // The port speaks TLS only: the same server over plain TCP does not answer as Redis.
    let plain = tls.url.replacen("rediss://", "redis://", 1);
    let s = RedisStore::new(config(&plain, FAILING)).unwrap();
    let e = unavailable(s.ping().await);
    eprintln!("plain TCP to the TLS port: {e}");
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let Some(tls) = tls() else {
        return;
    };
    // Without a client certificate the server refuses the connection.
    let without = || RedisStore::new(config(&tls.mtls_url, FAILING).tls_ca_pem(tls.ca.clone()));
    let e = unavailable(redis_common::claim(&without().unwrap(), "e1", LONG).await);
    eprintln!("mTLS without a client certificate: {e}");
    refused(without().unwrap()).await;

    // With it, everything works.
    let with = || {
        RedisStore::new(
            config(&tls.mtls_url, GENEROUS)
                .tls_ca_pem(tls.ca.clone())
                .tls_client_cert_pem(tls.client_cert.clone(), tls.client_key.clone()),
        )
        .unwrap()
    };
    let s = with();
    s.ping().await.unwrap();
    let t = started(redis_common::claim(&s, "e1", LONG).await.unwrap());
    assert_eq!(
        redis_common::release(&s, "e1", &t).await.unwrap(),
        Fenced::Applied
    );
    handled_then_duplicate(with()).await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_a_store_error_not_a_panic() {
    let Some(tls) = tls() else {
        return;
    };
    for url in [&tls.url, &tls.mtls_url] {
        let s = || {
            RedisStore::new(
                config(url, FAILING)
                    .tls_ca_pem(tls.other_ca.clone())
                    .tls_client_cert_pem(tls.client_cert.clone(), tls.client_key.clone()),
            )
            .unwrap()
        };
        let e = unavailable(s().ping().await);
        eprintln!("{url} with another CA: {e}");
        refused(s()).await;
    }
}

/// The servers' certificate names IP:127.0.0.1 only; `localhost` is another name.
#[tokio::test]
async fn a_server_certificate_for_another_name_is_a_store_error() {
    let Some(tls) = tls() else {
        return;
    };
    let url = tls.url.replacen("127.0.0.1", "localhost", 1);
    let s = RedisStore::new(config(&url, FAILING).tls_ca_pem(tls.ca.clone())).unwrap();
    let e = unavailable(s.ping().await);
    eprintln!("{url}: {e}");
    // Where `localhost` is only 127.0.0.1, the name is the one reason (elsewhere a refused
    // ::1 may be the error reported).
    let addrs: Vec<_> = tokio::net::lookup_host(("localhost", 1))
        .await
        .unwrap()
        .collect();
    if addrs
        .iter()
        .all(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST)
    {
        assert!(e.contains("not valid for name \"localhost\""), "{e}");
    }
    refused(RedisStore::new(config(&url, FAILING).tls_ca_pem(tls.ca.clone())).unwrap()).await;
}

#[test]
fn a_client_key_that_is_not_the_certificates_is_refused_at_build_time() {
    let Some(tls) = tls() else {
        return;
    };
    let e = RedisStore::new(
        RedisStoreConfig::new(&tls.mtls_url)
            .tls_ca_pem(tls.ca.clone())
            .tls_client_cert_pem(tls.client_cert.clone(), tls.server_key.clone()),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            RedisConfigError::InvalidTls {
                what: "client certificate and key",
                ..
            }
        ),
        "{e}"
    );
    let e = RedisStore::new(
        RedisStoreConfig::new(&tls.mtls_url).tls_client_cert_pem(tls.client_cert.clone(), "x"),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            RedisConfigError::InvalidTls {
                what: "client key",
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_cluster() {
    let Some(urls) = redis_common::cluster::tls_urls() else {
        return;
    };
    let Some(tls) = tls() else {
        return;
    };
    let prefix = redis_common::unique_prefix();
    let make = || {
        let s = cluster_store(
            RedisStoreConfig::cluster(urls.clone()).tls_ca_pem(tls.ca.clone()),
            &prefix,
        );
        assert!(s.is_tls());
        s
    };
    store_semantics(&make()).await;
    // The scripts of every operation, over TLS on a cluster.
    kinde_core::testing::check_store_protocol(&make()).await;
    exactly_once_across_receivers(100, Unavailable::Retried, make).await;
}

/// Without a CA bundle the platform trust store is used, as rustls-native-certs finds it:
/// this process's does not hold the test CA, so the server is not trusted; a process whose
/// `SSL_CERT_FILE` is the test CA trusts it; one whose `SSL_CERT_FILE` is missing, or holds no
/// certificate, is refused at build time (a configured CA bundle still works in the latter).
/// (The environment is changed only in child processes: this one has threads.)
#[tokio::test]
async fn without_a_ca_bundle_the_platform_trust_store_is_used() {
    let Some(tls) = tls() else {
        return;
    };
    match RedisStore::new(config(&tls.url, FAILING)) {
        Ok(s) => {
            let e = unavailable(s.ping().await);
            eprintln!("the platform trust store without the test CA: {e}");
        }
        // A machine without any CA certificate.
        Err(RedisConfigError::PlatformTrustStore { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    child(&tls, "trusted", tls.ca_path.to_str().unwrap()).await;
    child(&tls, "missing", "/nonexistent/kinde-test-ca.pem").await;
    child(&tls, "empty", "/dev/null").await;
}

/// Runs [`platform_trust_store_child`] in a child process with `SSL_CERT_FILE=cert_file`.
async fn child(_tls: &Tls, mode: &str, cert_file: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "tls::platform_trust_store_child", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env("KINDE_TEST_TLS_CHILD", mode)
        .env("SSL_CERT_FILE", cert_file)
        .env_remove("SSL_CERT_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {mode} child did not finish within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "the {mode} child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test]
#[ignore = "run in a child process by without_a_ca_bundle_the_platform_trust_store_is_used"]
async fn platform_trust_store_child() {
    let mode = std::env::var("KINDE_TEST_TLS_CHILD").expect("run by its parent test");
    let tls = tls().expect("the TLS servers");
    let built = RedisStore::new(config(&tls.url, GENEROUS));
    match mode.as_str() {
        "trusted" => {
            let s = built.unwrap();
            s.ping().await.unwrap();
            let t = started(redis_common::claim(&s, "e1", LONG).await.unwrap());
            assert_eq!(
                redis_common::complete(&s, "e1", &t, LONG).await.unwrap(),
                Fenced::Applied
            );
        }
        "missing" => {
            let e = built.unwrap_err();
            assert!(
                matches!(e, RedisConfigError::PlatformTrustStore { .. })
                    && e.to_string().contains("SSL_CERT_FILE"),
                "{e}"
            );
        }
        "empty" => {
            let e = built.unwrap_err();
            assert!(
                matches!(e, RedisConfigError::PlatformTrustStore { .. })
                    && e.to_string().contains("no CA certificate"),
                "{e}"
            );
            // What the application gave is checked first, and a CA bundle needs no platform CA.
            let e = RedisStore::new(config(&tls.url, GENEROUS).tls_client_cert_pem("x", "y"))
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    RedisConfigError::InvalidTls {
                        what: "client certificate",
                        ..
                    }
                ),
                "{e}"
            );
            let s = RedisStore::new(config(&tls.url, GENEROUS).tls_ca_pem(tls.ca.clone()));
            s.unwrap().ping().await.unwrap();
        }
        other => panic!("unknown mode {other}"),
    }
}
