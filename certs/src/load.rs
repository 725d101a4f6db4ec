//! Turning a PEM certificate chain and private key into a rustls [`CertifiedKey`].

use std::io;
use std::path::{Path, PathBuf};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate and key could not be loaded; each variant names the step.
///
/// `path` is the file that was read or, for PEM held in memory (a Secret's
/// `tls.crt`), the name the caller gave it.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate file could not be read.
    #[error("cannot read certificate file {}: {source}", path.display())]
    ReadCert {
        /// The certificate file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The certificate file has a PEM block that is cut off or not base64.
    #[error("certificate file {} holds malformed PEM (truncated or half-written?): {source}", path.display())]
    BadCertPem {
        /// The certificate file.
        path: PathBuf,
        /// The PEM parser's error.
        #[source]
        source: pem::Error,
    },

    /// The certificate file holds no `CERTIFICATE` PEM block.
    #[error(
        "no certificate in {}: expected at least one '-----BEGIN CERTIFICATE-----' block, leaf first",
        path.display()
    )]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },

    /// The first certificate of the chain is not a valid X.509 certificate.
    #[error("the first certificate in {} cannot be parsed as X.509: {source}", path.display())]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What rustls reported.
        #[source]
        source: TlsError,
    },

    /// The key file could not be read.
    #[error("cannot read private key file {}: {source}", path.display())]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The key file has a PEM block that is cut off or not base64.
    #[error("private key file {} holds malformed PEM (truncated or half-written?): {source}", path.display())]
    BadKeyPem {
        /// The key file.
        path: PathBuf,
        /// The PEM parser's error.
        #[source]
        source: pem::Error,
    },

    /// The key file holds no private key PEM block.
    #[error(
        "no private key in {}: expected a 'PRIVATE KEY', 'EC PRIVATE KEY' or 'RSA PRIVATE KEY' PEM block",
        path.display()
    )]
    NoKey {
        /// The key file.
        path: PathBuf,
    },

    /// The private key is not one the ring provider can sign with.
    #[error(
        "private key in {} is not a supported RSA (2048+ bits), ECDSA (P-256/P-384) or Ed25519 key: {source}",
        path.display()
    )]
    UnsupportedKey {
        /// The key file.
        path: PathBuf,
        /// What rustls reported.
        #[source]
        source: TlsError,
    },

    /// The private key does not belong to the leaf certificate.
    #[error(
        "private key in {} does not match the certificate in {}: the pair comes from different issuances (or one file is not yet rewritten)",
        key_path.display(),
        cert_path.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
    },
}

impl CertError {
    /// A stable, low-cardinality name for the variant, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ReadCert { .. } => "read_cert",
            Self::BadCertPem { .. } => "bad_cert_pem",
            Self::NoCertificate { .. } => "no_certificate",
            Self::BadCertificate { .. } => "bad_certificate",
            Self::ReadKey { .. } => "read_key",
            Self::BadKeyPem { .. } => "bad_key_pem",
            Self::NoKey { .. } => "no_key",
            Self::UnsupportedKey { .. } => "unsupported_key",
            Self::KeyMismatch { .. } => "key_mismatch",
        }
    }
}

/// Reads a PEM certificate chain (leaf first) and a PEM private key from files.
///
/// The key file may also hold certificates (a combined PEM): only the first
/// private key block is used.
pub fn load_pem_files(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<CertifiedKey, CertError> {
    let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
    let cert_pem = std::fs::read(cert_path).map_err(|source| CertError::ReadCert {
        path: cert_path.to_path_buf(),
        source,
    })?;
    let key_pem = std::fs::read(key_path).map_err(|source| CertError::ReadKey {
        path: key_path.to_path_buf(),
        source,
    })?;
    certified_key_from_pem(cert_path, &cert_pem, key_path, &key_pem)
}

/// Builds a [`CertifiedKey`] from PEM already in memory (e.g. a Secret's data).
///
/// `cert_path` and `key_path` only name the inputs in errors. The key is
/// checked against the leaf certificate, so a half-rotated pair is refused
/// rather than served.
pub fn certified_key_from_pem(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, CertError> {
    let chain = parse_chain(cert_path, cert_pem)?;
    let key = parse_key(key_path, key_pem)?;
    let signing_key = any_supported_type(&key).map_err(|source| CertError::UnsupportedKey {
        path: key_path.to_path_buf(),
        source,
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // ring keys always expose their public key, so `Unknown` is not
        // expected; if it happens, there is nothing to compare and no reason to refuse.
        Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(TlsError::InconsistentKeys(_)) => Err(CertError::KeyMismatch {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
        }),
        Err(source) => Err(CertError::BadCertificate {
            path: cert_path.to_path_buf(),
            source,
        }),
    }
}

fn parse_chain(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertError::BadCertPem {
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|err| match err {
        pem::Error::NoItemsFound => CertError::NoKey {
            path: path.to_path_buf(),
        },
        source => CertError::BadKeyPem {
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::testca::TestCa;

    const SAN: &str = "podid-webhook.podid-system.svc";

    struct Files {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
    }

    fn write_pair(cert: &[u8], key: &[u8]) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        Files {
            _dir: dir,
            cert: cert_path,
            key: key_path,
        }
    }

    fn load(files: &Files) -> Result<CertifiedKey, CertError> {
        load_pem_files(&files.cert, &files.key)
    }

    #[test]
    fn matching_pair_loads_with_leaf_first() {
        let ca = TestCa::new();
        let (cert, key) = ca.leaf(&[SAN]);
        let chain = format!("{cert}{}", ca.ca_pem());
        let loaded = load(&write_pair(chain.as_bytes(), key.as_bytes())).unwrap();
        assert_eq!(loaded.cert.len(), 2);
        assert_eq!(loaded.cert[1], ca.ca_der());
    }

    #[test]
    fn combined_pem_in_key_file_uses_its_key() {
        let (cert, key) = TestCa::new().leaf(&[SAN]);
        let combined = format!("{cert}{key}");
        assert!(load(&write_pair(cert.as_bytes(), combined.as_bytes())).is_ok());
    }

    #[test]
    fn missing_cert_file_is_read_cert() {
        let (_, key) = TestCa::new().leaf(&[SAN]);
        let files = write_pair(b"", key.as_bytes());
        std::fs::remove_file(&files.cert).unwrap();
        let err = load(&files).unwrap_err();
        assert!(matches!(err, CertError::ReadCert { ref path, .. } if *path == files.cert));
        assert!(err.to_string().contains("tls.crt"), "{err}");
    }

    #[test]
    fn missing_key_file_is_read_key() {
        let (cert, _) = TestCa::new().leaf(&[SAN]);
        let files = write_pair(cert.as_bytes(), b"");
        std::fs::remove_file(&files.key).unwrap();
        assert!(matches!(load(&files), Err(CertError::ReadKey { .. })));
    }

    #[test]
    fn empty_cert_file_is_no_certificate() {
        let (_, key) = TestCa::new().leaf(&[SAN]);
        let err = load(&write_pair(b"", key.as_bytes())).unwrap_err();
        assert!(matches!(err, CertError::NoCertificate { .. }), "{err:?}");
    }

    #[test]
    fn empty_key_file_is_no_key() {
        let (cert, _) = TestCa::new().leaf(&[SAN]);
        let err = load(&write_pair(cert.as_bytes(), b"")).unwrap_err();
        assert!(matches!(err, CertError::NoKey { .. }), "{err:?}");
    }

    #[test]
    fn garbage_cert_is_no_certificate() {
        let (_, key) = TestCa::new().leaf(&[SAN]);
        let err = load(&write_pair(b"not a certificate\n\x00\xff", key.as_bytes())).unwrap_err();
        assert!(matches!(err, CertError::NoCertificate { .. }), "{err:?}");
    }

    #[test]
    fn truncated_cert_block_is_bad_cert_pem() {
        let (cert, key) = TestCa::new().leaf(&[SAN]);
        let half = &cert.as_bytes()[..cert.len() / 2];
        let err = load(&write_pair(half, key.as_bytes())).unwrap_err();
        assert!(matches!(err, CertError::BadCertPem { .. }), "{err:?}");
        assert!(err.to_string().contains("half-written"), "{err}");
    }

    #[test]
    fn cert_block_that_is_not_x509_is_bad_certificate() {
        let (_, key) = TestCa::new().leaf(&[SAN]);
        let fake = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
        let err = load(&write_pair(fake.as_bytes(), key.as_bytes())).unwrap_err();
        assert!(matches!(err, CertError::BadCertificate { .. }), "{err:?}");
    }

    #[test]
    fn truncated_key_block_is_bad_key_pem() {
        let (cert, key) = TestCa::new().leaf(&[SAN]);
        let half = &key.as_bytes()[..key.len() / 2];
        let err = load(&write_pair(cert.as_bytes(), half)).unwrap_err();
        assert!(matches!(err, CertError::BadKeyPem { .. }), "{err:?}");
    }

    #[test]
    fn key_block_with_junk_der_is_unsupported_key() {
        let (cert, _) = TestCa::new().leaf(&[SAN]);
        let junk = "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n";
        let err = load(&write_pair(cert.as_bytes(), junk.as_bytes())).unwrap_err();
        assert!(matches!(err, CertError::UnsupportedKey { .. }), "{err:?}");
    }

    #[test]
    fn key_of_another_certificate_is_key_mismatch() {
        let ca = TestCa::new();
        let (cert, _) = ca.leaf(&[SAN]);
        let (_, other_key) = ca.leaf(&[SAN]);
        let err = load(&write_pair(cert.as_bytes(), other_key.as_bytes())).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err:?}");
        assert_eq!(err.kind(), "key_mismatch");
    }
}
