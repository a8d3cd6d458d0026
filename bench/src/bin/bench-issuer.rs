//! The benchmark's local Kinde issuer.
//!
//! - `bench-issuer sign COUNT FILE`: writes COUNT unique, freshly timestamped `user.created`
//!   tokens, one per line, signed by the test kit's fixture key (2 threads).
//! - `bench-issuer serve PORT STATS_FILE [KEYS]`: serves that key's JWKS on 127.0.0.1:PORT
//!   (`/.well-known/jwks` and `/.well-known/jwks.json`) and keeps the number of JWKS fetches
//!   answered in STATS_FILE, until SIGTERM/SIGINT. With KEYS (default 1, at most 64: the
//!   receivers' default bound) the JWKS lists KEYS keys: the signing key first, then KEYS − 1
//!   others under other `kid`s (the fixture's secondary key material), each one a key every
//!   receiver parses at load.

use std::io::Write as _;
use std::time::Duration;

use kinde_core::testing::{TestEvent, TestIssuer, TestKey};

fn usage() -> ! {
    eprintln!("usage: bench-issuer sign COUNT FILE | bench-issuer serve PORT STATS_FILE [KEYS]");
    std::process::exit(2);
}

fn sign(count: usize, file: &str) {
    let issuer = TestIssuer::new();
    let threads = 2;
    let parts: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let issuer = issuer.clone();
                s.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|_| issuer.sign(&TestEvent::sample("user.created").into_claims()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).expect("token file"));
    for token in parts.iter().flatten() {
        writeln!(out, "{token}").unwrap();
    }
    out.flush().unwrap();
}

async fn serve(port: u16, stats: String, keys: usize) {
    let issuer = TestIssuer::new();
    let signer = issuer.signer();
    let other = TestKey::secondary();
    for i in 1..keys {
        issuer.rotate_to(other.with_kid(&format!("bench-extra-{i}")));
    }
    issuer.rotate_to(signer); // signs with the fixture key again; the others stay published
    let server = issuer
        .serve_on(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await;
    let write = |n: u64| {
        let _ = std::fs::write(&stats, format!("{n}\n"));
    };
    write(0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => write(server.fetch_count()),
            _ = receiver_shutdown() => break,
        }
    }
    write(server.fetch_count());
}

async fn receiver_shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| usage())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["sign", count, file] => sign(parse(count), file),
        ["serve", port, stats] => serve(parse(port), stats.to_string(), 1).await,
        ["serve", port, stats, keys] => serve(parse(port), stats.to_string(), parse(keys)).await,
        _ => usage(),
    }
}
