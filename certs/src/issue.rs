//! Issuing the webhook's CA and serving certificate with rcgen (ECDSA P-256).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

/// How far before "now" every certificate's validity starts.
///
/// An API server whose clock is behind the webhook's would otherwise refuse a
/// certificate issued a moment ago as "not yet valid". The issue time of a
/// certificate is read back as `not_before + BACKDATE`.
pub const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// Why a certificate could not be issued or a stored CA could not sign.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// A key pair could not be generated.
    #[error("generating a key pair: {0}")]
    GenerateKey(#[source] rcgen::Error),
    /// The certificate could not be built or signed.
    #[error("signing the {what} certificate: {source}")]
    Sign {
        /// `CA` or `serving`.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The stored CA key is not a key rcgen can sign with.
    #[error("the CA private key cannot be used for signing: {0}")]
    CaKey(#[source] rcgen::Error),
    /// The stored CA certificate cannot be read as an issuer.
    #[error("the CA certificate cannot be read as an issuer: {0}")]
    CaCert(#[source] rcgen::Error),
    /// A time is outside what X.509 can express.
    #[error("time {0:?} cannot be written into a certificate")]
    Time(SystemTime),
}

/// The Service the webhook is reached through, which names the serving certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceName {
    /// The Service's name.
    pub service: String,
    /// The Service's namespace.
    pub namespace: String,
}

/// A freshly issued certificate and its private key, as PEM.
#[derive(Clone)]
pub struct IssuedPem {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

/// A CA that can sign serving certificates: its certificate and its key.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
    not_after: SystemTime,
}

// === impl ServiceName ===

impl ServiceName {
    /// The Service `service` in `namespace`.
    pub fn new(service: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            namespace: namespace.into(),
        }
    }

    /// `<service>.<namespace>.svc`: the name the API server verifies.
    pub fn host(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }

    /// Every name the Service is reachable by, most specific last.
    ///
    /// The API server verifies `<svc>.<ns>.svc`; the other forms serve
    /// clients inside the cluster that use a shorter or the fully qualified name.
    pub fn dns_names(&self) -> Vec<String> {
        let (svc, ns) = (&self.service, &self.namespace);
        vec![
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
        ]
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service)
    }
}

// The key is secret: a derived Debug would print it.
impl fmt::Debug for IssuedPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedPem").finish_non_exhaustive()
    }
}

// === impl Signer ===

impl Signer {
    /// A signer from a stored CA certificate (DER) and its PEM private key.
    ///
    /// Does not check that the key belongs to the certificate:
    /// [`crate::material`] does that before a CA is used.
    pub fn from_stored(
        cert: &CertificateDer<'_>,
        key_pem: &str,
        not_after: SystemTime,
    ) -> Result<Self, IssueError> {
        let key = KeyPair::from_pem(key_pem).map_err(IssueError::CaKey)?;
        let issuer = Issuer::from_ca_cert_der(cert, key).map_err(IssueError::CaCert)?;
        Ok(Self { issuer, not_after })
    }

    /// The end of the CA's validity; no certificate it signs outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Issues a self-signed CA valid from `now - BACKDATE` for `validity`.
///
/// The CA may sign end-entity certificates only (path length 0); its common
/// name carries the issue time, so two CAs trusted together during a
/// rotation never share a subject.
pub fn issue_ca(now: SystemTime, validity: Duration) -> Result<(IssuedPem, Signer), IssueError> {
    let unix = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("podid-webhook-ca@{unix}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let not_after = now + validity;
    set_validity(&mut params, now, not_after)?;
    let key = KeyPair::generate().map_err(IssueError::GenerateKey)?;
    let cert = params
        .self_signed(&key)
        .map_err(|source| IssueError::Sign { what: "CA", source })?;
    let pem = IssuedPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    let signer = Signer {
        issuer: Issuer::new(params, key),
        not_after: truncate(not_after),
    };
    Ok((pem, signer))
}

/// Issues a serving certificate for every name of `service`, signed by `ca`.
///
/// Valid from `now - BACKDATE` for `validity`, but never past the CA's own
/// end: a certificate that outlives its issuer would fail at the CA's expiry.
pub fn issue_serving(
    ca: &Signer,
    service: &ServiceName,
    now: SystemTime,
    validity: Duration,
) -> Result<IssuedPem, IssueError> {
    let sign = |source| IssueError::Sign {
        what: "serving",
        source,
    };
    let mut params = CertificateParams::new(service.dns_names()).map_err(sign)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, service.host());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut params, now, (now + validity).min(ca.not_after))?;
    let key = KeyPair::generate().map_err(IssueError::GenerateKey)?;
    let cert = params.signed_by(&key, &ca.issuer).map_err(sign)?;
    Ok(IssuedPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// When a certificate issued by this module was issued, from its `not_before`.
pub fn issued_at(not_before: SystemTime) -> SystemTime {
    not_before + BACKDATE
}

fn set_validity(
    params: &mut CertificateParams,
    now: SystemTime,
    not_after: SystemTime,
) -> Result<(), IssueError> {
    let not_before = now.checked_sub(BACKDATE).ok_or(IssueError::Time(now))?;
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    Ok(())
}

/// X.509 times have whole seconds; truncating here keeps what is computed
/// equal to what is read back.
fn truncate(time: SystemTime) -> SystemTime {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn to_offset(time: SystemTime) -> Result<time::OffsetDateTime, IssueError> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| IssueError::Time(time))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| IssueError::Time(time))?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| IssueError::Time(time))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::inspect::summarize;
    use rustls_pki_types::pem::PemObject;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn serving_certificate_names_every_form_of_the_service() {
        let now = at(1_800_000_000);
        let (_, ca) = issue_ca(now, 1_000 * DAY).unwrap();
        let svc = ServiceName::new("podid-webhook", "podid-system");
        let leaf = issue_serving(&ca, &svc, now, 365 * DAY).unwrap();
        let summary = summarize(&der(&leaf.cert_pem)).unwrap();
        assert_eq!(
            summary.dns_names,
            [
                "podid-webhook",
                "podid-webhook.podid-system",
                "podid-webhook.podid-system.svc",
                "podid-webhook.podid-system.svc.cluster.local",
            ]
        );
        assert_eq!(svc.host(), "podid-webhook.podid-system.svc");
    }

    #[test]
    fn validity_starts_backdated_and_issue_time_reads_back_exactly() {
        let now = at(1_800_000_000);
        let (ca_pem, ca) = issue_ca(now, 1_000 * DAY).unwrap();
        let summary = summarize(&der(&ca_pem.cert_pem)).unwrap();
        let not_before = summary.not_before.to_system_time().unwrap();
        assert_eq!(not_before, now - BACKDATE);
        assert_eq!(issued_at(not_before), now);
        assert_eq!(summary.not_after.to_system_time(), Some(now + 1_000 * DAY));
        assert_eq!(ca.not_after(), now + 1_000 * DAY);
    }

    #[test]
    fn serving_certificate_never_outlives_its_ca() {
        let now = at(1_800_000_000);
        let (_, ca) = issue_ca(now, 30 * DAY).unwrap();
        let svc = ServiceName::new("s", "n");
        let leaf = issue_serving(&ca, &svc, now, 365 * DAY).unwrap();
        let not_after = summarize(&der(&leaf.cert_pem)).unwrap().not_after;
        assert_eq!(not_after.to_system_time(), Some(now + 30 * DAY));
    }

    #[test]
    fn stored_ca_signs_like_the_freshly_issued_one() {
        let now = at(1_800_000_000);
        let (ca_pem, _) = issue_ca(now, 1_000 * DAY).unwrap();
        let stored = Signer::from_stored(&der(&ca_pem.cert_pem), &ca_pem.key_pem, now).unwrap();
        let leaf = issue_serving(&stored, &ServiceName::new("s", "n"), now, DAY).unwrap();
        assert!(summarize(&der(&leaf.cert_pem)).is_some());
    }

    #[test]
    fn garbage_ca_key_is_ca_key_error() {
        let (ca_pem, _) = issue_ca(at(1_800_000_000), DAY).unwrap();
        let err = Signer::from_stored(&der(&ca_pem.cert_pem), "nope", at(0)).unwrap_err();
        assert!(matches!(err, IssueError::CaKey(_)), "{err:?}");
    }

    #[test]
    fn ca_is_named_after_its_issue_time_and_limited_to_end_entities() {
        let (a, signer) = issue_ca(at(1_800_000_000), DAY).unwrap();
        let der = der(&a.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "podid-webhook-ca@1800000000");
        let constraints = cert.basic_constraints().unwrap().unwrap().value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
        assert!(!format!("{a:?}").contains("PRIVATE"));
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }
}
