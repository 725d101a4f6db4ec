//! Raw HTTP/1.1 over TCP: requests sent byte for byte as written (bypass attempts must not be normalised by a client library).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use podid_azure_emulator::client::Reply;
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

/// Parses a complete HTTP/1.1 response into a [`RawOutcome::Response`].
///
/// # Errors
/// When the bytes are not an HTTP answer (see [`Reply::parse`]).
pub fn parse(bytes: &[u8]) -> Result<RawOutcome, String> {
    let Reply {
        status,
        headers,
        body,
    } = Reply::parse(bytes)?;
    Ok(RawOutcome::Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_response_keeps_status_headers_and_body() {
        let r = parse(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\ncontent-length: 16\r\n\r\n{\"error\":\"nope\"}\nextra").unwrap();
        assert_eq!(r.status(), Some(403));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["error"], "nope");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"nonsense").is_err());
        assert_eq!(
            RawOutcome::Error("x".into()).json(),
            serde_json::Value::Null
        );
    }
}
