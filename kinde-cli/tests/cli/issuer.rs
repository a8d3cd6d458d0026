//! `issuer`: the first line, the keys it creates and publishes, the signals that stop it.

use kinde_core::testing::TestKey;

use crate::common::{self, IssuerProcess};

fn is_kinde_kid(kid: &str) -> bool {
    let pairs: Vec<&str> = kid.split(':').collect();
    pairs.len() == 16
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_one_key_in_an_empty_dir_serves_it_and_stops_on_sigterm() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("keys/nested");
    let issuer = IssuerProcess::start(&dir, &[]).await;
    let port = issuer
        .url
        .strip_prefix("http://127.0.0.1:")
        .expect("issuer http://127.0.0.1:PORT");
    assert!(port.parse::<u16>().unwrap() > 0, "{}", issuer.first_line());

    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let pem = std::fs::read_to_string(&files[0]).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by others: {mode:o}"
        );
    }

    for path in ["/.well-known/jwks", "/.well-known/jwks.json"] {
        let resp = issuer.jwks(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let jwks: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kty"], "RSA");
        assert_eq!(keys[0]["alg"], "RS256");
        assert!(
            is_kinde_kid(keys[0]["kid"].as_str().unwrap()),
            "{}",
            keys[0]
        );
    }
    assert_eq!(issuer.jwks("/other").await.status(), 404);
    assert!(
        issuer
            .stderr
            .lock()
            .unwrap()
            .contains("created a 2048-bit RSA key"),
        "{}",
        issuer.stderr.lock().unwrap()
    );
    let kid = issuer.kids().await;
    assert_eq!(issuer.signal_and_wait("TERM").await, 0);

    // A second run reuses the key: no new file, the same kid.
    let again = IssuerProcess::start(&dir, &[]).await;
    assert_eq!(again.kids().await, kid);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert!(!again.stderr.lock().unwrap().contains("created"));
    assert_eq!(again.signal_and_wait("INT").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_every_key_of_the_dir_including_one_added_while_running() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let issuer = IssuerProcess::start(dir.path(), &[]).await;
    let before = issuer.kids().await;
    assert_eq!(before.len(), 1);
    assert!(is_kinde_kid(&before[0]));

    // Rotation: a new key dropped into the directory is published at once and signs.
    common::file(
        dir.path(),
        "rotated.pem",
        TestKey::secondary().private_pem(),
    );
    let after = issuer.kids().await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.contains(&before[0]));
    let signed = common::run(&["sign", "user.created", "--keys", common::path(dir.path())]).await;
    signed.expect_code(0);
    let decoded = common::run(&["decode", signed.stdout.trim()]).await;
    let new_kid = decoded.json()["header"]["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, before[0], "the newest key signs");
    assert!(after.contains(&new_kid));
    drop(issuer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_on_the_port_asked_for_and_only_on_loopback() {
    let dir = common::keys_dir(&[TestKey::primary()]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bind = format!("--bind=127.0.0.1:{port}");
    let issuer = IssuerProcess::start(dir.path(), &[&bind]).await;
    assert_eq!(
        issuer.first_line(),
        format!("issuer http://127.0.0.1:{port}")
    );

    // The port is taken now: exit 2, nothing on stdout.
    let busy = common::run(&["issuer", "--keys", common::path(dir.path()), &bind]).await;
    busy.expect_code(2);
    assert!(busy.stdout.is_empty(), "{busy:?}");
    assert!(busy.stderr.contains("cannot listen"), "{busy:?}");
    drop(issuer);

    let public = common::run(&[
        "issuer",
        "--keys",
        common::path(dir.path()),
        "--bind",
        "0.0.0.0:0",
    ])
    .await;
    public.expect_code(2);
    assert!(public.stderr.contains("loopback"), "{public:?}");
    assert!(public.stdout.is_empty());

    // A .pem that is no key: exit 2 naming it, before anything is served.
    common::file(dir.path(), "broken.pem", "not a key");
    let broken = common::run(&["issuer", "--keys", common::path(dir.path())]).await;
    broken.expect_code(2);
    assert!(broken.stderr.contains("broken.pem"), "{broken:?}");
    assert!(broken.stdout.is_empty());
}
