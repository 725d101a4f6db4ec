//! The webhook's rustls server configuration: TLS 1.2+, ring, ALPN `http/1.1`.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::version::{TLS12, TLS13};

use crate::resolver::ReloadingCertResolver;

/// The one ALPN protocol the webhook speaks.
///
/// The API server calls webhooks over HTTP/1.1 only; offering `h2` would
/// let other clients pick a protocol the server does not serve.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A server configuration that takes its certificate from `resolver`.
///
/// TLS 1.3 and 1.2 only (rustls has nothing older), the ring provider named
/// explicitly so the config does not depend on which provider a binary
/// installed as its process default, no client authentication (the API
/// server is authenticated by the request's content, not by a certificate),
/// ALPN exactly `http/1.1` (a client that offers ALPN without it is refused,
/// one that offers none is served), and no session resumption: a resumed
/// session skips the certificate, so a resuming client would keep the
/// certificate of its first handshake however often it is rotated. The API
/// server never resumes, so this costs it nothing.
pub fn server_config(resolver: Arc<ReloadingCertResolver>) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Fails only if the provider has no cipher suite for these versions; ring's
    // default provider has both, and every test that builds a config would fail.
    #[allow(clippy::expect_used)]
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13, &TLS12])
        .expect("ring's default provider supports TLS 1.3 and 1.2");
    let mut config = builder.with_no_client_auth().with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_is_exactly_http11() {
        let config = server_config(Arc::new(ReloadingCertResolver::empty()));
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn every_cipher_suite_is_tls12_or_later() {
        let config = server_config(Arc::new(ReloadingCertResolver::empty()));
        let suites = &config.crypto_provider().cipher_suites;
        assert!(!suites.is_empty());
        for suite in suites {
            let version = suite.version().version;
            assert!(
                version == rustls::ProtocolVersion::TLSv1_2
                    || version == rustls::ProtocolVersion::TLSv1_3,
                "{suite:?}"
            );
        }
    }
}
