//! A raw HTTP/1.1 client for the attack tests: it sends exactly the bytes an attacker would (a
//! head declaring a body that never comes, a trickle) and says how each connection ended.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub const PATH: &str = "/kinde/webhook";

/// A request head for `POST /kinde/webhook` declaring `declared` body bytes, kept alive.
pub fn head(addr: SocketAddr, declared: usize, extra: &str) -> String {
    format!(
        "POST {PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/jwt\r\n\
         webhook-id: msg_attack\r\ncontent-length: {declared}\r\n{extra}\r\n"
    )
}

/// A whole delivery of `token`, kept alive.
pub fn delivery(addr: SocketAddr, token: &str) -> Vec<u8> {
    let mut bytes = head(addr, token.len(), "").into_bytes();
    bytes.extend_from_slice(token.as_bytes());
    bytes
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `(status, code)`, the code read from kinde-core's JSON body (`""` if it is not one).
    pub fn code(&self) -> (u16, String) {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        let code = v
            .get("error")
            .or_else(|| v.get("status"))
            .and_then(|c| c.as_str())
            .unwrap_or_default();
        (self.status, code.to_owned())
    }
}

/// How a connection ended, as far as the client saw.
#[derive(Debug)]
pub enum Ending {
    /// An answer, then the server closed the connection.
    Answered(Answer),
    /// An answer, and the connection was still open at the bound.
    AnsweredKeptOpen(Answer),
    /// Closed (EOF) with no answer.
    Closed,
    /// Reset (or another read error) before a whole answer arrived.
    Reset(std::io::ErrorKind),
    /// Nothing at all within the bound.
    Hung,
}

impl Ending {
    /// The answer, if one came.
    pub fn answer(&self) -> Option<&Answer> {
        match self {
            Ending::Answered(a) | Ending::AnsweredKeptOpen(a) => Some(a),
            _ => None,
        }
    }

    /// Whether the server let go of the connection (closed or reset) within the bound.
    pub fn let_go(&self) -> bool {
        matches!(
            self,
            Ending::Answered(_) | Ending::Closed | Ending::Reset(_)
        )
    }
}

/// A connection (or its reading half) and what it has read so far.
pub struct Conn<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes`; `false` if the server had already gone (a reset).
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }
}

impl Conn<tokio::net::tcp::OwnedReadHalf> {
    /// The reading half of a connection whose writing half is elsewhere (a task trickling).
    pub fn from_read_half(stream: tokio::net::tcp::OwnedReadHalf) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> Conn<S> {
    /// The next answer (1xx skipped unless `interim`): `Ok(None)` on EOF first, `Err` on a
    /// read error, both before a whole answer.
    pub async fn next_answer(&mut self, interim: bool) -> std::io::Result<Option<Answer>> {
        loop {
            if let Some((answer, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                if interim || !(100..200).contains(&answer.status) {
                    return Ok(Some(answer));
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await? {
                0 => return Ok(None),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the server closes (EOF or reset) within `bound`; bytes after the answer are
    /// ignored.
    pub async fn closes_within(&mut self, bound: Duration) -> bool {
        let closed = async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(bound, closed).await.is_ok()
    }

    /// Waits at most `bound` for the answer, then at most `bound` again for the close.
    pub async fn ending(mut self, bound: Duration) -> Ending {
        match tokio::time::timeout(bound, self.next_answer(false)).await {
            Err(_elapsed) => Ending::Hung,
            Ok(Ok(None)) => Ending::Closed,
            Ok(Err(e)) => Ending::Reset(e.kind()),
            Ok(Ok(Some(answer))) => {
                if self.closes_within(bound).await {
                    Ending::Answered(answer)
                } else {
                    Ending::AnsweredKeptOpen(answer)
                }
            }
        }
    }
}

/// A whole answer at the start of `buf`, and the bytes it used.
fn parse(buf: &[u8]) -> Option<(Answer, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len = if (100..200).contains(&status) {
        0
    } else {
        headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let body = buf.get(end + 4..end + 4 + len)?;
    let answer = Answer {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    };
    Some((answer, end + 4 + len))
}

/// The soft `RLIMIT_NOFILE`, raised to the hard limit first if it is lower. Client and server
/// sockets share this process: each connection costs two descriptors.
pub fn open_files_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024)
}

/// How many connections a test may hold at once: `wanted`, fewer when the descriptors
/// (`open_files_limit`, shared by `sharing` such tests running at once) are short; at least 16.
pub fn connections(wanted: usize, sharing: usize) -> usize {
    let limit = open_files_limit() as usize;
    // Descriptors for the runtime, the JWKS server, the test harness and the server's listener.
    let spare = limit.saturating_sub(256);
    let n = wanted.min(spare / 2 / sharing.max(1)).max(16);
    if n < wanted {
        eprintln!("RLIMIT_NOFILE is {limit}: {n} connections instead of {wanted}");
    }
    n
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
