//! A raw HTTP/1.1 client over one TCP connection per request: it sends exactly the bytes a
//! case describes (a declared length with no body, a chunked upload that never ends) and reads
//! the answer as soon as it is complete, whether or not the upload was finished.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A request body and its framing.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body, no framing header.
    Empty,
    /// These bytes, with their `Content-Length`.
    Full(Vec<u8>),
    /// A declared `Content-Length` and nothing sent after the head.
    Declared(u64),
    /// A declared `Content-Length`, these first bytes of the body, and nothing more.
    Partial { declared: u64, sent: Vec<u8> },
    /// `Transfer-Encoding: chunked`, these chunks; the terminating chunk only if `finish`.
    Chunked { chunks: Vec<Vec<u8>>, finish: bool },
}

/// One request.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Sent without `connection: close`, to see whether the server closes after its answer.
    pub keep_alive: bool,
}

impl Req {
    pub fn new(method: &'static str, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: Body::Empty,
            keep_alive: false,
        }
    }

    /// Sends it without `connection: close`: the answer then says whether the server closed.
    pub fn keep_alive(mut self) -> Self {
        self.keep_alive = true;
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// The body bytes sent, for recognising an echo.
    pub fn sent_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::Full(b) => b.clone(),
            Body::Chunked { chunks, .. } => chunks.concat(),
            Body::Empty | Body::Declared(_) | Body::Partial { .. } => Vec::new(),
        }
    }

    /// The bytes sent for this request.
    pub fn encode(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nhost: {addr}\r\n", self.method, self.path);
        if !self.keep_alive {
            head.push_str("connection: close\r\n");
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        match &self.body {
            Body::Empty => {}
            Body::Full(b) => head.push_str(&format!("content-length: {}\r\n", b.len())),
            Body::Declared(n) | Body::Partial { declared: n, .. } => {
                head.push_str(&format!("content-length: {n}\r\n"))
            }
            Body::Chunked { .. } => head.push_str("transfer-encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        match &self.body {
            Body::Empty | Body::Declared(_) => {}
            Body::Full(b) | Body::Partial { sent: b, .. } => out.extend_from_slice(b),
            Body::Chunked { chunks, finish } => {
                for c in chunks.iter().filter(|c| !c.is_empty()) {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                if *finish {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
            }
        }
        out
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For a keep-alive request: whether the server closed the connection after the answer
    /// (within 10 s: a bound, not a timing assertion).
    pub closed: Option<bool>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `req` on a fresh connection and reads the answer. The upload keeps going (and its
/// connection half stays open) while the answer is read, so a server that answers before the
/// body is complete is seen doing so.
pub async fn send(addr: SocketAddr, req: &Req) -> Resp {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let bytes = req.encode(addr);
    let writer = tokio::spawn(async move {
        // Write errors are expected once a server refuses mid-upload and closes.
        let _ = wr.write_all(&bytes).await;
        std::future::pending::<()>().await;
        drop(wr);
    });
    let head_request = req.method == "HEAD";
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        read_response(&mut rd, head_request),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no complete answer within 30 s to {} {}",
            req.method, req.path
        )
    });
    let mut resp = resp;
    if req.keep_alive {
        resp.closed = Some(closes(&mut rd).await);
    }
    writer.abort();
    resp
}

/// Whether the server closes (EOF or a reset) within 10 s; bytes after the answer are ignored.
async fn closes(rd: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
    let closed = async {
        let mut chunk = [0u8; 1024];
        while let Ok(n) = rd.read(&mut chunk).await {
            if n == 0 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .is_ok()
}

async fn read_response(rd: &mut (impl tokio::io::AsyncRead + Unpin), head_request: bool) -> Resp {
    let mut buf = Vec::new();
    let mut eof = false;
    loop {
        if let Some(resp) = parse(&buf, eof, head_request) {
            return resp;
        }
        assert!(
            !eof,
            "connection closed mid-answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        let mut chunk = [0u8; 8192];
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The answer in `buf` once it is complete (interim 1xx answers skipped).
fn parse(mut buf: &[u8], eof: bool, head_request: bool) -> Option<Resp> {
    loop {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let rest = &buf[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let body = if head_request || status == 204 || status == 304 {
            Vec::new()
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            dechunk(rest)?
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            rest.get(..n)?.to_vec()
        } else if eof {
            rest.to_vec()
        } else {
            return None;
        };
        return Some(Resp {
            status,
            headers,
            body,
            closed: None,
        });
    }
}

fn dechunk(mut src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = src.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&src[..line_end]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        src = &src[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(src.get(..size)?);
        src = src.get(size + 2..)?;
    }
}
