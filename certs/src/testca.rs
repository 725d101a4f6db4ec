//! A throwaway certificate authority for tests and benches (feature `test-support`).
//!
//! Panics on failure instead of returning errors: generating a key or signing
//! fixed parameters with rcgen does not fail in practice, and a test wants
//! the panic.
#![allow(clippy::expect_used)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls::version::{TLS12, TLS13};
use rustls_pki_types::CertificateDer;

use crate::tls::ALPN_HTTP11;

/// Numbers the CAs of one process, so no two share a subject name.
static NEXT_CA: AtomicU64 = AtomicU64::new(1);

/// A self-signed CA with a fresh ECDSA P-256 key; every instance is distinct.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
}

// === impl TestCa ===

impl TestCa {
    /// Creates a new CA named `podid test CA <n>`.
    ///
    /// Distinct names matter: a client that trusts another CA of the same
    /// name reports `BadSignature` instead of the clearer `UnknownIssuer`.
    pub fn new() -> Self {
        let n = NEXT_CA.fetch_add(1, Ordering::Relaxed);
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("podid test CA {n}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate as PEM.
    pub fn ca_pem(&self) -> String {
        self.pem.clone()
    }

    /// The CA certificate as DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }

    /// Issues a server certificate for `sans` (DNS names or IP addresses);
    /// returns `(cert_pem, key_pem)` with a fresh key each call.
    ///
    /// The common name is the first SAN; the certificate is valid from 1975
    /// to 4096 so tests never meet an expiry.
    pub fn leaf(&self, sans: &[&str]) -> (String, String) {
        let sans: Vec<String> = sans.iter().map(|san| (*san).to_owned()).collect();
        let mut params = CertificateParams::new(sans.clone()).expect("valid SANs");
        if let Some(first) = sans.first() {
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        (cert.pem(), key.serialize_pem())
    }

    /// Trust roots holding only this CA.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der()).expect("rcgen CA is valid X.509");
        roots
    }

    /// A client (ring, TLS 1.2+) trusting only this CA and offering ALPN
    /// `http/1.1`, like the API server calling a webhook.
    pub fn client_config(&self) -> ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&TLS13, &TLS12])
            .expect("ring supports TLS 1.3 and 1.2")
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        config
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}
