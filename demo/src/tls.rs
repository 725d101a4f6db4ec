//! TLS as the API server and Azure clients use it: a fresh CA, the webhook's serving certificate, the stand-in's `localhost` certificate, and one HTTPS request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use podid_azure_emulator::client::{Reply, exchange};
use podid_certs::issue::{ServiceName, issue_ca, issue_serving};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The Service the API server would reach the webhook through (the name it verifies).
pub const WEBHOOK_SERVICE: (&str, &str) = ("podid-webhook", "podid-system");

/// PEM files the programs are started with.
#[derive(Debug)]
pub struct Material {
    /// The webhook's CA (what the MutatingWebhookConfiguration's `caBundle` would hold).
    pub webhook_ca: String,
    /// The webhook's serving certificate and key.
    pub webhook_cert: (String, String),
    /// The stand-in's certificate for `localhost` (Entra ID and ARM), also its own CA.
    pub azure_cert: (String, String),
}

/// Issues everything with podid's own certificate code (the webhook's) and rcgen (the stand-in's).
pub fn material() -> Result<Material, String> {
    let now = SystemTime::now();
    let (ca, signer) =
        issue_ca(now, Duration::from_secs(86_400)).map_err(|e| format!("issuing the CA: {e}"))?;
    let service = ServiceName::new(WEBHOOK_SERVICE.0, WEBHOOK_SERVICE.1);
    let serving = issue_serving(&signer, &service, now, Duration::from_secs(3_600))
        .map_err(|e| format!("issuing the serving certificate: {e}"))?;
    let azure = rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .map_err(|e| format!("issuing the stand-in's certificate: {e}"))?;
    Ok(Material {
        webhook_ca: ca.cert_pem,
        webhook_cert: (serving.cert_pem, serving.key_pem),
        azure_cert: (azure.cert.pem(), azure.signing_key.serialize_pem()),
    })
}

/// What one HTTPS exchange negotiated and got.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP answer.
    pub reply: Reply,
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: String,
    /// The negotiated ALPN protocol.
    pub alpn: String,
}

/// One request over TLS ≥ 1.2 with ALPN `http/1.1` (as the API server sends
/// it) to `addr`, verifying the certificate for `server_name` against `ca_pem`.
pub async fn https(
    addr: SocketAddr,
    server_name: &str,
    ca_pem: &str,
    request: (&str, &str, &[(&str, &str)], &str),
    timeout: Duration,
) -> Result<Answer, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("CA PEM: {e}"))?;
        roots.add(cert).map_err(|e| format!("CA: {e}"))?;
    }
    let mut config = rustls::ClientConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let exchange_once = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {addr} as {server_name}: {e}"))?;
        let (_, session) = tls.get_ref();
        let version = session
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let alpn = session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| "none".into());
        let (method, target, headers, body) = request;
        let reply = exchange(tls, method, target, headers, body).await?;
        Ok(Answer {
            reply,
            version,
            alpn,
        })
    };
    tokio::time::timeout(timeout, exchange_once)
        .await
        .map_err(|_| format!("no answer from {addr} within {timeout:?}"))?
}
