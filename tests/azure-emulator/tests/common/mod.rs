//! Test helpers: a raw HTTP/1.1 client over real sockets (so tests can send what SDKs never would), a sample world, assertions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod aad;
pub mod arm;

use std::net::SocketAddr;
use std::sync::Arc;

use podid_azure_emulator::{AzureState, Emulator, EmulatorConfig, ImdsLimits, ServicePrincipal};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Client id of the sample service principal.
pub const SP_CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
/// Its secret.
pub const SP_SECRET: &str = "s3cret-value";
/// The token path.
pub const TOKEN: &str = "/metadata/identity/oauth2/token";
/// A query every SDK would send.
pub const BASE_QUERY: &str = "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an IMDS-shaped JSON error.
    pub fn assert_imds_error(&self, status: u16, error: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert!(
            self.header("content-type")
                .unwrap_or("")
                .starts_with("application/json")
        );
        let v = self.json();
        assert_eq!(v["error"], error, "body: {}", self.body);
        assert!(v["error_description"].is_string());
        v
    }
}

/// Sends one request on `stream` (with `Connection: close`) and reads the answer.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        host_of(headers)
    );
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
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify; what was read is the answer.
    let _ = stream.read_to_end(&mut raw).await;
    parse(&String::from_utf8_lossy(&raw))
}

fn host_of(headers: &[(&str, &str)]) -> String {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or("169.254.169.254".into(), |(_, v)| (*v).to_owned())
}

fn parse(raw: &str) -> Reply {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {raw:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    );
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A plain-HTTP request to `addr`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    exchange(stream, method, target, headers, body).await
}

/// GET with `Metadata: true`.
pub async fn imds_get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target, &[("Metadata", "true")], "").await
}

/// A token request with `Metadata: true` and `extra` appended to the base query.
pub async fn imds_token(addr: SocketAddr, extra: &str) -> Reply {
    imds_get(addr, &format!("{TOKEN}?{BASE_QUERY}{extra}")).await
}

/// An HTTPS request to `addr`, trusting `ca_pem`, for server name `localhost`.
pub async fn https_request(
    addr: SocketAddr,
    ca_pem: &str,
    method: &str,
    target: &str,
    body: &str,
) -> Reply {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let host = format!("localhost:{}", addr.port());
    let headers = [
        ("Host", host.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    exchange(tls, method, target, &headers, body).await
}

/// Identities id-a, id-b, id-c; standalone VMs vm0 and vm1; scale set ss0
/// with instances ss0-0 and ss0-1; a service principal with a secret.
pub fn world() -> AzureState {
    let mut s = AzureState::default();
    for name in ["id-a", "id-b", "id-c"] {
        s.add_identity(name);
    }
    s.add_vm("vm0").unwrap();
    s.add_vm("vm1").unwrap();
    s.add_scale_set("ss0").unwrap();
    s.add_scale_set_vm("ss0", "ss0-0").unwrap();
    s.add_scale_set_vm("ss0", "ss0-1").unwrap();
    let sp = ServicePrincipal::new(&s.tenant_id, SP_CLIENT).with_secret(SP_SECRET);
    s.insert_service_principal(sp);
    s
}

/// The sample world on loopback, without throttling unless a test turns it on.
pub async fn start() -> Emulator {
    start_with(world()).await
}

/// `state` on loopback, without throttling.
pub async fn start_with(state: AzureState) -> Emulator {
    let config = EmulatorConfig::loopback(state).with_limits(ImdsLimits::unlimited());
    Emulator::start(config).await.unwrap()
}

/// Client id of identity `name`.
pub fn client_id(emulator: &Emulator, name: &str) -> String {
    emulator.read(|s| s.identity(name).unwrap().client_id.clone())
}

/// Resource id of identity `name`.
pub fn resource_id(emulator: &Emulator, name: &str) -> String {
    emulator.read(|s| s.identity(name).unwrap().resource_id.clone())
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
