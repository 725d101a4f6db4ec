//! Test helpers: a raw HTTP/1.1 client over real sockets (so tests can send what SDKs never would), a sample world, assertions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod aad;
pub mod arm;

use std::net::SocketAddr;
use std::sync::Arc;

use podid_azure_emulator::client;
use podid_azure_emulator::{AzureState, Emulator, EmulatorConfig, ImdsLimits, ServicePrincipal};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Client id of the sample service principal.
pub const SP_CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
/// Its secret.
pub const SP_SECRET: &str = "s3cret-value";
/// The token path.
pub const TOKEN: &str = "/metadata/identity/oauth2/token";
/// A query every SDK would send.
pub const BASE_QUERY: &str = "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

pub use podid_azure_emulator::client::Reply;

/// Sends one request on `stream` and reads the answer.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    framed(client::exchange(stream, method, target, headers, body).await)
}

/// A plain-HTTP request to `addr`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    framed(client::request(addr, method, target, headers, body).await)
}

/// The answer, which the stand-in, like Azure, frames with `Content-Length`
/// (never chunked).
fn framed(reply: Result<Reply, String>) -> Reply {
    let reply = reply.unwrap_or_else(|e| panic!("{e}"));
    assert!(reply.header("transfer-encoding").is_none(), "{reply:?}");
    reply
}

/// A TLS connection to `addr` for server name `localhost`, trusting only `ca_pem`.
pub async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
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
    connector.connect(name, tcp).await.unwrap()
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
    let tls = tls_connect(addr, ca_pem).await;
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
