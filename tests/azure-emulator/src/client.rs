//! A raw HTTP/1.1 client for tests: the request goes out byte for byte as
//! written (bypass attempts must reach the server un-normalised, which no
//! client library allows), and the answer is read to the end and parsed whole.
//!
//! The stand-in's own tests, the proxy's tests and the end-to-end harness all
//! read answers with [`Reply::parse`].

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The `Host` a request gets unless its headers name one: IMDS's address.
pub const DEFAULT_HOST: &str = "169.254.169.254";

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (lossy UTF-8), de-chunked and cut at `Content-Length`.
    pub body: String,
}

// === impl Reply ===

impl Reply {
    /// Parses a complete HTTP/1.1 response: framed by `Content-Length`,
    /// chunked, or read until the server closed.
    ///
    /// # Errors
    /// A missing or malformed head, a bad status line, broken chunking.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let split = find(bytes, b"\r\n\r\n").ok_or_else(|| {
            format!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(bytes)
            )
        })?;
        let head = String::from_utf8_lossy(&bytes[..split]);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut reply = Self {
            status,
            headers,
            body: String::new(),
        };
        let raw_body = &bytes[split + 4..];
        let body = if reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            dechunk(raw_body)?
        } else {
            let len = reply
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(raw_body.len());
            raw_body[..len.min(raw_body.len())].to_vec()
        };
        reply.body = String::from_utf8_lossy(&body).into_owned();
        Ok(reply)
    }

    /// A header's value (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON: a test helper, the panic is the failed assertion.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts an IMDS-shaped error (`status`, a JSON body with `error` and
    /// a string `error_description`) and returns the body.
    ///
    /// # Panics
    /// When the answer is anything else.
    pub fn assert_imds_error(&self, status: u16, error: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert!(
            self.header("content-type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "{self:?}"
        );
        let v = self.json();
        assert_eq!(v["error"], error, "body: {}", self.body);
        assert!(v["error_description"].is_string(), "body: {}", self.body);
        v
    }
}

/// The request as sent: `Host` ([`DEFAULT_HOST`] unless `headers` has one),
/// the other headers in order, `Connection: close`, and `Content-Length` when
/// there is a body or the method is POST.
pub fn request_text(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> String {
    let host = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or(DEFAULT_HOST, |(_, v)| v);
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
    {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

/// Sends one request on `stream` and reads the answer to the end.
///
/// # Errors
/// Writing fails, or what came back is not an HTTP answer.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, String> {
    let req = request_text(method, target, headers, body);
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{method} {target}: sending: {e}"))?;
    let mut raw = Vec::new();
    // A server may reset after answering, and a TLS peer may close without
    // close_notify: what was read is the answer.
    let read = stream.read_to_end(&mut raw).await;
    match (read, raw.is_empty()) {
        (Err(e), true) => Err(format!("{method} {target}: no answer: {e}")),
        _ => Reply::parse(&raw).map_err(|e| format!("{method} {target}: {e}")),
    }
}

/// [`exchange`] on a new plain-TCP connection to `addr`.
///
/// # Errors
/// The connection is refused, or as [`exchange`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    exchange(stream, method, target, headers, body).await
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(rest.get(..size).ok_or("truncated chunk")?);
        rest = rest.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn content_length_cuts_the_body() {
        let r = Reply::parse(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\ncontent-length: 16\r\n\r\n{\"error\":\"nope\"}\nextra").unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["error"], "nope");
    }

    #[test]
    fn chunked_body_is_reassembled() {
        let r = Reply::parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.json()["a"], 1);
    }

    #[test]
    fn body_without_framing_runs_to_the_close() {
        let r = Reply::parse(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!(r.body, "all of it");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Reply::parse(b"nonsense").is_err());
        assert!(Reply::parse(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(
            Reply::parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert!(
            Reply::parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc").is_err()
        );
    }

    #[test]
    fn request_text_names_the_host_once_and_frames_bodies() {
        let text = request_text("GET", "/x", &[("Metadata", "true")], "");
        assert_eq!(
            text,
            "GET /x HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\nMetadata: true\r\n\r\n"
        );
        let text = request_text("POST", "/t", &[("host", "login"), ("A", "b")], "k=v");
        assert_eq!(
            text,
            "POST /t HTTP/1.1\r\nHost: login\r\nConnection: close\r\nA: b\r\nContent-Length: 3\r\n\r\nk=v"
        );
        assert!(request_text("POST", "/t", &[], "").contains("Content-Length: 0\r\n"));
    }
}
