//! Raw HTTP/1.1 over TCP: requests sent byte for byte as written (bypass attempts must not be normalised by a client library).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One request. The target goes on the request line exactly as given.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RawRequest {
    /// `GET`, `POST`, …
    #[serde(default = "get")]
    pub method: String,
    /// The request target, unmodified (may hold tabs, backslashes, `%2F`…).
    pub target: String,
    /// Headers besides `Host` and `Connection: close`.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

fn get() -> String {
    "GET".into()
}

/// What came back: a response, or why there was none.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawOutcome {
    /// An HTTP response.
    Response {
        /// Status code.
        status: u16,
        /// Headers, names lower-cased.
        headers: Vec<(String, String)>,
        /// Body (lossy UTF-8).
        body: String,
    },
    /// The connection was refused (nothing listens where the packet went).
    Refused,
    /// Any other failure.
    Error(String),
}

// === impl RawRequest ===

impl RawRequest {
    /// A GET of `target` with `Metadata: true`, as every IMDS client sends.
    pub fn imds(target: impl Into<String>) -> Self {
        Self {
            method: get(),
            target: target.into(),
            headers: vec![("Metadata".into(), "true".into())],
        }
    }
}

// === impl RawOutcome ===

impl RawOutcome {
    /// The status code, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            RawOutcome::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The body parsed as JSON (`Null` if it is not JSON or there was no response).
    pub fn json(&self) -> serde_json::Value {
        match self {
            RawOutcome::Response { body, .. } => serde_json::from_str(body).unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    /// A header's value (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            RawOutcome::Response { headers, .. } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Sends `req` to `addr` on a fresh connection and reads the whole response.
pub fn send(addr: SocketAddr, req: &RawRequest, timeout: Duration) -> RawOutcome {
    match exchange(addr, req, timeout) {
        Ok(bytes) => parse(&bytes).unwrap_or_else(RawOutcome::Error),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => RawOutcome::Refused,
        Err(e) => RawOutcome::Error(e.to_string()),
    }
}

fn exchange(addr: SocketAddr, req: &RawRequest, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        req.method,
        req.target,
        addr.ip()
    );
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => Ok(bytes),
        // A server that answers and then resets (closing with unread input) still answered.
        Err(_) if !bytes.is_empty() => Ok(bytes),
        Err(e) => Err(e),
    }
}

/// Parses a complete HTTP/1.1 response (`Content-Length`, chunked, or read to close).
pub fn parse(bytes: &[u8]) -> Result<RawOutcome, String> {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
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
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw_body = &bytes[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(raw_body)?
    } else {
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        raw_body[..len.unwrap_or(raw_body.len()).min(raw_body.len())].to_vec()
    };
    Ok(RawOutcome::Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn content_length_response_is_parsed() {
        let r = parse(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\ncontent-length: 17\r\n\r\n{\"error\":\"nope\"}\nextra").unwrap();
        assert_eq!(r.status(), Some(403));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json()["error"], "nope");
    }

    #[test]
    fn chunked_response_is_reassembled() {
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.json()["a"], 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"nonsense").is_err());
        assert!(parse(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }
}
