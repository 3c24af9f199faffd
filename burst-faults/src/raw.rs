//! A raw HTTP/1.1 client: sends exactly the bytes given, so tests can send what no
//! well-behaved client would (invalid UTF-8, lying `Content-Length`, huge headers).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A status line was read.
    Status(u16, String),
    /// The server closed the connection without a status line.
    Closed,
    /// Nothing within the timeout.
    Silent,
}

impl Answer {
    /// The status code, if any.
    pub fn code(&self) -> Option<u16> {
        match self {
            Answer::Status(c, _) => Some(*c),
            _ => None,
        }
    }
}

/// Builds a request: request line, `Host`, the extra header lines, `Connection: close`,
/// and the body (with `Content-Length` unless a header line already sets it or
/// `Transfer-Encoding`).
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
        .into_bytes();
    let mut sets_length = false;
    for (k, v) in headers {
        let lower = k.to_ascii_lowercase();
        sets_length |= lower == "content-length" || lower == "transfer-encoding";
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !sets_length && (!body.is_empty() || method == "POST" || method == "PUT") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Sends `bytes` to `addr`, half-closes the write side when `close_write` is set (so a
/// server waiting for more body sees the end), and reads the answer's status line. The body
/// of the answer (up to 4 KiB) is returned with the status.
pub async fn send(addr: SocketAddr, bytes: &[u8], close_write: bool, timeout: Duration) -> Answer {
    let work = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        // A server may answer (413, 431) and close before reading everything: ignore
        // write errors and read what it said.
        let _ = s.write_all(bytes).await;
        if close_write {
            let _ = s.shutdown().await;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 64 * 1024 {
                        break;
                    }
                }
            }
        }
        Some(buf)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Answer::Silent,
        Ok(None) => Answer::Closed,
        Ok(Some(buf)) => parse(&buf),
    }
}

fn parse(buf: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(buf);
    let Some(code) = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
    else {
        return Answer::Closed;
    };
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.chars().take(4096).collect())
        .unwrap_or_default();
    Answer::Status(code, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_length_and_parses_status() {
        let r = request("POST", "/", &[("Content-Type", "application/json")], b"{}");
        let text = String::from_utf8(r).unwrap();
        assert!(text.contains("Content-Length: 2\r\n\r\n{}"), "{text}");
        assert_eq!(
            parse(b"HTTP/1.1 413 Payload Too Large\r\nx: y\r\n\r\nbig"),
            Answer::Status(413, "big".into())
        );
        assert_eq!(parse(b""), Answer::Closed);
    }
}
