//! A minimal HTTP/1.1 client on hyper's connection API: one connection per request, plain TCP or rustls.
//!
//! Upstream calls are rare (tokens are cached for hours), so connection reuse
//! is not worth a pool's code and memory.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::debug;

/// Upstream answers larger than this are refused (a token answer is a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// Where a request goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// Plain HTTP to an address (IMDS).
    Plain(SocketAddr),
    /// HTTPS to `host:port` (Azure AD).
    Tls {
        /// DNS name or IP, also the TLS server name.
        host: String,
        /// Port.
        port: u16,
        /// TLS settings.
        tls: Tls,
    },
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// TCP connect failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Where to.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The host is no valid TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// TLS handshake failed (untrusted certificate and the like).
    #[error("TLS handshake with {host}: {source}")]
    Tls {
        /// Server name.
        host: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange: {0}")]
    Http(#[from] hyper::Error),
    /// The answer's body could not be read or was too large.
    #[error("reading the answer body: {0}")]
    Body(String),
}

/// rustls client settings for Azure AD.
#[derive(Clone)]
pub struct Tls(TlsConnector);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// A TLS client configuration with the ring provider and `roots`, speaking HTTP/1.1.
pub fn tls_connector(roots: RootCertStore) -> Result<Tls, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls(TlsConnector::from(Arc::new(config))))
}

/// The platform's trusted roots (honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`).
pub fn native_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        debug!(%error, "reading trusted certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    debug!(added, ignored, "trusted certificates loaded");
    roots
}

/// Sends `request` and returns the answer with its body still streaming.
pub async fn send(
    target: &Target,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, HttpError> {
    match target {
        Target::Plain(addr) => exchange(connect(&addr.to_string(), *addr).await?, request).await,
        Target::Tls { host, port, tls } => {
            let tcp = connect(host, (host.as_str(), *port)).await?;
            let name = ServerName::try_from(host.clone())
                .map_err(|_| HttpError::ServerName(host.clone()))?;
            let tls = tls
                .0
                .connect(name, tcp)
                .await
                .map_err(|source| HttpError::Tls {
                    host: host.clone(),
                    source,
                })?;
            exchange(tls, request).await
        }
    }
}

/// Sends `request` and reads the whole answer (up to [`MAX_BODY`]).
pub async fn fetch(
    target: &Target,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), HttpError> {
    let (parts, body) = send(target, request).await?.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| HttpError::Body(e.to_string()))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

async fn connect(what: &str, to: impl tokio::net::ToSocketAddrs) -> Result<TcpStream, HttpError> {
    let tcp = TcpStream::connect(to)
        .await
        .map_err(|source| HttpError::Connect {
            addr: what.to_owned(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

async fn exchange<S>(io: S, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, HttpError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // The connection task lives until the answer's body is read or dropped.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            debug!(%error, "upstream connection ended with an error");
        }
    });
    Ok(sender.send_request(request).await?)
}
