//! HTTPS to ARM: one pooled hyper client over rustls (ring provider), trusting the system's roots or injected ones.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::answer::Answer;
use crate::seams::ArmError;

/// ARM bodies of a VM or scale set are a few kB; anything near this is not ARM.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Which certificate authorities the client trusts.
#[derive(Clone, Debug, Default)]
pub enum TrustRoots {
    /// The operating system's store (rustls-native-certs).
    #[default]
    Native,
    /// Exactly these (tests, air-gapped clouds).
    Custom(RootCertStore),
}

/// Why the HTTPS client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The system's certificate store could not be read, or held nothing usable.
    #[error("loading the system's trusted certificates: {0}")]
    NativeRoots(String),
    /// A PEM bundle held no usable certificate.
    #[error("reading trusted certificates from PEM: {0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("building the TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A root store holding every certificate of a PEM bundle.
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TransportError::Pem(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TransportError::Pem(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TransportError::Pem("no certificate found".into()));
    }
    Ok(roots)
}

fn native_roots() -> Result<RootCertStore, TransportError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded.errors.first().map(ToString::to_string);
        return Err(TransportError::NativeRoots(
            why.unwrap_or_else(|| "no certificates".into()),
        ));
    }
    Ok(roots)
}

/// The pooled HTTPS client.
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// An HTTP/1.1-over-TLS client (https only) with `roots`.
    pub(crate) fn new(
        roots: &TrustRoots,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, TransportError> {
        let roots = match roots {
            TrustRoots::Native => native_roots()?,
            TrustRoots::Custom(roots) => roots.clone(),
        };
        // The ring provider explicitly: works whether or not `main` installed a default.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // Without it a request on a fresh connection waits for delayed ACKs.
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Self {
            client,
            request_timeout,
        })
    }

    /// One request with a bearer token; the whole answer read within the request timeout.
    /// Connection failures and timeouts are [`ArmError::Transient`].
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: Option<Bytes>,
    ) -> Result<Answer, ArmError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(
                USER_AGENT,
                concat!("podid-controller/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ArmError::Unexpected(format!("building the request to {url}: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ArmError::Transient(format!("{url}: {}", error_chain(&e))))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| ArmError::Transient(format!("reading the answer of {url}: {e}")))?
                .to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| {
                ArmError::Transient(format!(
                    "{url}: no answer within {:?}",
                    self.request_timeout
                ))
            })?
    }
}

/// An error with its causes, `a: b: c` (hyper's own message is only the outermost).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
