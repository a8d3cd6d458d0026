//! What every real-app test shares: a local issuer, a receiver counting its handler calls,
//! and the check that a signed delivery through the app's documented mounting is handled once
//! and its retry deduplicated — over real HTTP on 127.0.0.1.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kinde_core::event::{Event, UserCreated};
use kinde_core::testing::{JwksServer, TestEvent, TestIssuer};
use kinde_core::Webhooks;

/// A receiver and what tests look at.
pub struct Kinde {
    pub issuer: TestIssuer,
    pub jwks: JwksServer,
    pub calls: Arc<AtomicUsize>,
    pub webhooks: Webhooks,
}

impl Kinde {
    /// A local issuer serving its JWKS, and a receiver whose `user.created` handler counts.
    /// `path` is the receiver's path (used by the layer and middleware forms only).
    pub async fn start(path: &str) -> Self {
        let issuer = TestIssuer::new();
        let jwks = issuer.serve().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let webhooks = Webhooks::builder()
            .issuer(jwks.url())
            .path(path)
            .on(move |_: Event<UserCreated>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::convert::Infallible>(()) }
            })
            .build()
            .expect("valid receiver");
        Self {
            issuer,
            jwks,
            calls,
            webhooks,
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// One signed `user.created` delivery POSTed to `http://addr{path}` as Kinde sends it,
    /// then its retry: `200 handled`, then `200 duplicate`, the handler run once.
    pub async fn delivers_once(&self, addr: SocketAddr, path: &str) {
        let before = self.calls();
        let token = self
            .issuer
            .sign(&TestEvent::sample("user.created").into_claims());
        let first = post(addr, path, &token).await;
        assert_eq!(first, (200, r#"{"status":"handled"}"#.to_owned()), "{path}");
        assert_eq!(
            self.calls(),
            before + 1,
            "{path}: the handler did not run once"
        );
        let retry = post(addr, path, &token).await;
        assert_eq!(
            retry,
            (200, r#"{"status":"duplicate"}"#.to_owned()),
            "{path}"
        );
        assert_eq!(
            self.calls(),
            before + 1,
            "{path}: the retry ran the handler again"
        );
    }
}

/// POSTs `token` to `http://addr{path}` with Kinde's headers; status and body.
pub async fn post(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let resp = client()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/jwt")
        .header("webhook-id", "msg_app_test")
        .body(token.to_owned())
        .send()
        .await
        .expect("the app answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("a body"))
}

/// A plain HTTP/1.1 client (no gzip: bodies arrive as sent), every request bounded.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A free loopback listener.
pub async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = l.local_addr().expect("local addr");
    (l, addr)
}
