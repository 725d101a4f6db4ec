//! The self-managed certificate Secret's contents: its keys, and checking and reading them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::inspect::summarize;
use crate::issue::{IssueError, Signer};
use crate::load::{CertError, certified_key_from_pem};

/// The serving certificate (leaf), `kubernetes.io/tls`'s key.
pub const TLS_CRT: &str = "tls.crt";
/// The serving certificate's private key.
pub const TLS_KEY: &str = "tls.key";
/// The CA that signs new serving certificates.
pub const CA_CRT: &str = "ca.crt";
/// That CA's private key.
pub const CA_KEY: &str = "ca.key";
/// Every CA a client should trust now: what is published as the `caBundle`.
pub const CA_BUNDLE: &str = "ca-bundle.crt";

/// The Secret's data, key by key, as PEM bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData {
    /// [`TLS_CRT`].
    pub tls_crt: Vec<u8>,
    /// [`TLS_KEY`].
    pub tls_key: Vec<u8>,
    /// [`CA_CRT`].
    pub ca_crt: Vec<u8>,
    /// [`CA_KEY`].
    pub ca_key: Vec<u8>,
    /// [`CA_BUNDLE`].
    pub ca_bundle: Vec<u8>,
}

/// Why a Secret's contents cannot be used; each variant names the part.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// `tls.crt` and `tls.key` are not a usable pair.
    #[error("serving certificate ({TLS_CRT}, {TLS_KEY}): {0}")]
    Serving(#[source] CertError),
    /// `ca.crt` and `ca.key` are not a usable pair.
    #[error("CA ({CA_CRT}, {CA_KEY}): {0}")]
    Ca(#[source] CertError),
    /// The CA pair cannot sign.
    #[error("CA ({CA_CRT}, {CA_KEY}): {0}")]
    Signer(#[source] IssueError),
    /// A certificate's validity period cannot be read.
    #[error("the validity of {0} cannot be read")]
    Validity(&'static str),
}

/// A certificate's validity period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start.
    pub not_before: SystemTime,
    /// End.
    pub not_after: SystemTime,
}

/// A CA certificate with its validity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCert {
    /// The certificate.
    pub der: CertificateDer<'static>,
    /// Its validity.
    pub validity: Validity,
}

/// A Secret's contents, checked: each pair matches, every certificate parses.
#[derive(Debug)]
pub struct Material {
    /// The bytes it was read from.
    pub data: SecretData,
    /// The serving certificate, ready for the resolver.
    pub serving: CertifiedKey,
    /// The serving certificate's validity.
    pub serving_validity: Validity,
    /// The CA that signs new serving certificates.
    pub ca: CaCert,
    /// That CA, able to sign.
    pub signer: Signer,
    /// The CAs of `ca-bundle.crt`, in order; empty if it is unreadable.
    pub bundle: Vec<CaCert>,
}

// === impl SecretData ===

impl SecretData {
    /// Reads the five keys from a Secret's `data`; a missing key reads as empty.
    pub fn from_map(data: &BTreeMap<String, Vec<u8>>) -> Self {
        let get = |key: &str| data.get(key).cloned().unwrap_or_default();
        Self {
            tls_crt: get(TLS_CRT),
            tls_key: get(TLS_KEY),
            ca_crt: get(CA_CRT),
            ca_key: get(CA_KEY),
            ca_bundle: get(CA_BUNDLE),
        }
    }

    /// The Secret's `data`.
    pub fn to_map(&self) -> BTreeMap<String, Vec<u8>> {
        let Self {
            tls_crt,
            tls_key,
            ca_crt,
            ca_key,
            ca_bundle,
        } = self.clone();
        BTreeMap::from([
            (TLS_CRT.to_owned(), tls_crt),
            (TLS_KEY.to_owned(), tls_key),
            (CA_CRT.to_owned(), ca_crt),
            (CA_KEY.to_owned(), ca_key),
            (CA_BUNDLE.to_owned(), ca_bundle),
        ])
    }

    /// Checks and reads the contents.
    pub fn parse(&self) -> Result<Material, MaterialError> {
        let serving = certified_key_from_pem(
            Path::new(TLS_CRT),
            &self.tls_crt,
            Path::new(TLS_KEY),
            &self.tls_key,
        )
        .map_err(MaterialError::Serving)?;
        let serving_validity =
            validity_of(&serving.cert[0]).ok_or(MaterialError::Validity(TLS_CRT))?;
        // Loading the CA as a served pair checks that the key is the certificate's.
        let ca_pair = certified_key_from_pem(
            Path::new(CA_CRT),
            &self.ca_crt,
            Path::new(CA_KEY),
            &self.ca_key,
        )
        .map_err(MaterialError::Ca)?;
        let ca = ca_cert(ca_pair.cert[0].clone()).ok_or(MaterialError::Validity(CA_CRT))?;
        let key_pem = std::str::from_utf8(&self.ca_key).unwrap_or_default();
        let signer = Signer::from_stored(&ca.der, key_pem, ca.validity.not_after)
            .map_err(MaterialError::Signer)?;
        // An unreadable bundle is repaired from the CA (see `rotation`), not a reason to start over.
        let bundle = parse_bundle(&self.ca_bundle).unwrap_or_default();
        Ok(Material {
            data: self.clone(),
            serving,
            serving_validity,
            ca,
            signer,
            bundle,
        })
    }
}

// Private keys: a derived Debug would print them.
impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData").finish_non_exhaustive()
    }
}

// === impl Material ===

impl Material {
    /// The serving leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.serving.cert[0]
    }

    /// Whether the serving certificate is valid for `host` at `now` under one of `roots`.
    pub fn serving_verifies(
        &self,
        roots: &[CertificateDer<'static>],
        host: &str,
        now: SystemTime,
    ) -> bool {
        verifies(self.leaf(), roots, host, now)
    }
}

/// Parses a PEM bundle of CA certificates; `None` if it is malformed, empty,
/// or a certificate's validity cannot be read.
pub fn parse_bundle(pem: &[u8]) -> Option<Vec<CaCert>> {
    let ders = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let cas = ders.into_iter().map(ca_cert).collect::<Option<Vec<_>>>()?;
    (!cas.is_empty()).then_some(cas)
}

/// Writes CA certificates as one PEM bundle.
pub fn bundle_pem<'a>(cas: impl IntoIterator<Item = &'a CertificateDer<'static>>) -> Vec<u8> {
    cas.into_iter().map(pem_of).collect::<String>().into_bytes()
}

/// One certificate as PEM.
pub fn pem_of(der: &CertificateDer<'_>) -> String {
    let body = base64_lines(der.as_ref());
    format!("-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
}

/// Whether `leaf` is valid for `host` at `now` and chains to one of `roots`,
/// checked as a TLS client (the API server) would check it.
pub fn verifies(
    leaf: &CertificateDer<'_>,
    roots: &[CertificateDer<'static>],
    host: &str,
    now: SystemTime,
) -> bool {
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(roots.iter().cloned());
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return false;
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) =
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider).build()
    else {
        return false;
    };
    added > 0
        && verifier
            .verify_server_cert(leaf, &[], &name, &[], UnixTime::since_unix_epoch(unix(now)))
            .is_ok()
}

fn unix(time: SystemTime) -> std::time::Duration {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

fn validity_of(der: &CertificateDer<'_>) -> Option<Validity> {
    let summary = summarize(der)?;
    Some(Validity {
        not_before: summary.not_before.to_system_time()?,
        not_after: summary.not_after.to_system_time()?,
    })
}

fn ca_cert(der: CertificateDer<'static>) -> Option<CaCert> {
    let validity = validity_of(&der)?;
    Some(CaCert { der, validity })
}

fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    // RFC 7468: 64 characters a line.
    let mut lines = String::with_capacity(text.len() + text.len() / 64 + 1);
    for chunk in text.as_bytes().chunks(64) {
        lines.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        lines.push('\n');
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::issue::ServiceName;
    use crate::rotation::{RotationPolicy, fresh};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn data() -> SecretData {
        fresh(
            &RotationPolicy::default(),
            &ServiceName::new("s", "n"),
            now(),
        )
        .unwrap()
    }

    #[test]
    fn secret_data_round_trips_through_the_secret_map() {
        let data = data();
        let map = data.to_map();
        assert_eq!(
            map.keys().collect::<Vec<_>>(),
            ["ca-bundle.crt", "ca.crt", "ca.key", "tls.crt", "tls.key"]
        );
        assert_eq!(SecretData::from_map(&map), data);
        assert_eq!(
            SecretData::from_map(&BTreeMap::new()),
            SecretData::default()
        );
        assert!(!format!("{data:?}").contains("PRIVATE"));
    }

    #[test]
    fn empty_secret_is_a_serving_error() {
        let err = SecretData::default().parse().unwrap_err();
        assert!(matches!(err, MaterialError::Serving(_)), "{err:?}");
    }

    #[test]
    fn ca_key_of_another_ca_is_refused() {
        let mut data = data();
        data.ca_key = self::data().ca_key;
        let err = data.parse().unwrap_err();
        assert!(
            matches!(err, MaterialError::Ca(CertError::KeyMismatch { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("ca.key"), "{err}");
    }

    #[test]
    fn serving_key_of_another_certificate_is_refused() {
        let mut data = data();
        data.tls_key = self::data().tls_key;
        let err = data.parse().unwrap_err();
        assert!(matches!(err, MaterialError::Serving(_)), "{err:?}");
    }

    #[test]
    fn bundle_pem_reads_back_as_the_same_certificates() {
        let (a, b) = (data().parse().unwrap(), data().parse().unwrap());
        let pem = bundle_pem([&a.ca.der, &b.ca.der]);
        let read = parse_bundle(&pem).unwrap();
        assert_eq!(read, [a.ca.clone(), b.ca.clone()]);
        assert_eq!(pem_of(&a.ca.der).into_bytes(), a.data.ca_crt);
        assert!(parse_bundle(b"").is_none());
        assert!(parse_bundle(b"-----BEGIN CERTIFICATE-----\nAAEC\n").is_none());
    }

    #[test]
    fn verification_checks_issuer_name_and_time() {
        let material = data().parse().unwrap();
        let other = data().parse().unwrap();
        let roots = [material.ca.der.clone()];
        let leaf = material.leaf();
        assert!(verifies(leaf, &roots, "s.n.svc", now()));
        assert!(verifies(leaf, &roots, "s.n.svc.cluster.local", now()));
        assert!(!verifies(leaf, &roots, "t.n.svc", now()));
        assert!(!verifies(
            leaf,
            std::slice::from_ref(&other.ca.der),
            "s.n.svc",
            now()
        ));
        assert!(!verifies(leaf, &[], "s.n.svc", now()));
        let expired = material.serving_validity.not_after + Duration::from_secs(1);
        assert!(!verifies(leaf, &roots, "s.n.svc", expired));
    }
}
