//! A hyper HTTP/1.1 client over TLS (like the API server) or plain TCP (like the kubelet's probes).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use podid_certs::testca::TestCa;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// The name the API server dials: `<service>.<namespace>.svc`.
pub const SERVER_NAME: &str = "podid-webhook.podid-system.svc";

/// Request body type of every test client.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// What the TLS handshake settled on.
#[derive(Clone, Debug)]
pub struct TlsInfo {
    /// Negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// Negotiated protocol version.
    pub version: ProtocolVersion,
    /// The server's leaf certificate.
    pub leaf: CertificateDer<'static>,
    /// Full or resumed.
    pub kind: HandshakeKind,
}

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, panicking with the body shown when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the `Content-Type` is JSON.
    pub fn assert_json_content_type(&self) {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default());
        assert_eq!(
            ct,
            Some("application/json"),
            "status {}: {}",
            self.status,
            self.text()
        );
    }
}

/// One HTTP/1.1 connection; requests on it reuse it (keep-alive).
#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Body>,
    /// Set for TLS connections.
    pub tls: Option<TlsInfo>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    /// Connects over TLS, naming [`SERVER_NAME`], and completes the handshake.
    pub async fn tls(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(SERVER_NAME).expect("valid DNS name");
        let stream = TlsConnector::from(config).connect(name, tcp).await?;
        let (_, session) = stream.get_ref();
        let info = TlsInfo {
            alpn: session.alpn_protocol().map(<[u8]>::to_vec),
            version: session.protocol_version().expect("handshake complete"),
            leaf: session
                .peer_certificates()
                .expect("server sent a certificate")[0]
                .clone(),
            kind: session.handshake_kind().expect("handshake complete"),
        };
        let mut conn = Self::over(stream).await?;
        conn.tls = Some(info);
        Ok(conn)
    }

    /// Connects over plain TCP.
    pub async fn plain(addr: SocketAddr) -> io::Result<Self> {
        Self::over(TcpStream::connect(addr).await?).await
    }

    async fn over<T>(io: T) -> io::Result<Self>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(io::Error::other)?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            tls: None,
            driver,
        })
    }

    /// Whether the server has closed the connection (or the client gave up on it).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Reply, hyper::Error> {
        self.sender.ready().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, format!("{SERVER_NAME}:443"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, */*")
            .body(body)
            .expect("valid request");
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// POSTs `body`, panicking if the exchange fails.
    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.request(Method::POST, path, full(body))
            .await
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}"))
    }

    /// POSTs a JSON value.
    pub async fn post_json(&mut self, path: &str, value: &Value) -> Reply {
        self.post(path, serde_json::to_vec(value).expect("serializable"))
            .await
    }

    /// GETs `path`, panicking if the exchange fails.
    pub async fn get(&mut self, path: &str) -> Reply {
        self.request(Method::GET, path, empty())
            .await
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }
}

/// A body sent all at once.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body sent in `chunks`, waiting `delay` before each one.
pub fn dribble(chunks: Vec<Bytes>, delay: Duration) -> Body {
    let frames = futures::stream::iter(chunks).then(move |chunk| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, io::Error>(Frame::data(chunk))
    });
    StreamBody::new(frames).boxed_unsync()
}

/// A client like the API server's: TLS 1.2+, ALPN `http/1.1`, trusting only `cas`.
pub fn client_config(cas: &[&TestCa]) -> Arc<ClientConfig> {
    if let [ca] = cas {
        return Arc::new(ca.client_config());
    }
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca.ca_der()).expect("valid CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
