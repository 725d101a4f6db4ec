//! A service principal's credential from its mounted Secret: the client secret, or a certificate-signed client assertion.
//!
//! Layout of the Secret (aad-pod-identity's): type 1 reads key `clientsecret`,
//! or the only key when there is exactly one. Type 2 reads key `certificate`:
//! a PEM file holding the certificate (first `CERTIFICATE` block) and its RSA
//! private key (`PRIVATE KEY`, PKCS#8, or `RSA PRIVATE KEY`, PKCS#1).
//! aad-pod-identity also accepted a PKCS#12 (`.pfx`) file with a `password`
//! key; that format is refused with an error saying so, because reading it
//! takes a PKCS#12 / RC2 / 3DES stack that no small, maintained crate
//! provides. Convert with `openssl pkcs12 -in cert.pfx -nodes -out cert.pem`.
//!
//! Files are read at every fetch, so a rotated Secret is picked up without a restart.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde_json::json;

use crate::proxy::token::unix_now;

/// Key of the client secret in the Secret.
pub const SECRET_KEY: &str = "clientsecret";
/// Key of the PEM certificate and key in the Secret.
pub const CERTIFICATE_KEY: &str = "certificate";
/// Lifetime of a client assertion.
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// Why the credential cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The Secret's directory cannot be listed.
    #[error("listing {dir}: {source}")]
    ListDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No `clientsecret` key and not exactly one key.
    #[error("{dir} has no {SECRET_KEY:?} key and {count} other keys (exactly one would be used)")]
    NoSecret {
        /// The directory.
        dir: PathBuf,
        /// How many keys it has.
        count: usize,
    },
    /// A key's file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is empty.
    #[error("{0} is empty")]
    Empty(PathBuf),
    /// The certificate file is not PEM, or the key in it is encrypted.
    #[error(
        "{path}: {why}; store the certificate and its unencrypted RSA key as PEM (PKCS#12 / .pfx is not supported)"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// What was found.
        why: &'static str,
    },
    /// The private key is not an RSA key ring accepts (2048 to 8192 bits).
    #[error("{path}: the private key cannot be used for RS256: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// ring's reason.
        why: String,
    },
    /// Signing failed.
    #[error("signing the client assertion failed")]
    Sign,
}

/// The client secret in `dir`.
pub fn read_secret(dir: &Path) -> Result<String, CredentialError> {
    let preferred = dir.join(SECRET_KEY);
    let path = if preferred.is_file() {
        preferred
    } else {
        only_key(dir)?
    };
    let text = std::fs::read_to_string(&path).map_err(|source| CredentialError::Read {
        path: path.clone(),
        source,
    })?;
    // Secrets made with `kubectl create secret --from-file` often end in a newline;
    // Azure AD secrets never contain whitespace.
    let secret = text.trim();
    if secret.is_empty() {
        return Err(CredentialError::Empty(path));
    }
    Ok(secret.to_owned())
}

/// The pod's projected service-account token, read at every fetch: the kubelet
/// rotates the file (at 80 % of its life) and a stale copy would be refused.
pub fn read_federated_token(path: &Path) -> Result<String, CredentialError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CredentialError::Empty(path.to_owned()));
    }
    Ok(token.to_owned())
}

/// The one key of a mounted Secret; Kubernetes' own `..data` entries do not count.
fn only_key(dir: &Path) -> Result<PathBuf, CredentialError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CredentialError::ListDir {
        dir: dir.to_owned(),
        source,
    })?;
    let keys: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    match <[PathBuf; 1]>::try_from(keys) {
        Ok([only]) => Ok(only),
        Err(keys) => Err(CredentialError::NoSecret {
            dir: dir.to_owned(),
            count: keys.len(),
        }),
    }
}

/// A client assertion for `client_id` at `audience` (the token endpoint URL),
/// signed with the certificate in `dir`.
pub fn client_assertion(
    dir: &Path,
    client_id: &str,
    audience: &str,
) -> Result<String, CredentialError> {
    let path = dir.join(CERTIFICATE_KEY);
    let pem = std::fs::read(&path).map_err(|source| CredentialError::Read {
        path: path.clone(),
        source,
    })?;
    let (cert, key) = certificate_and_key(&path, &pem)?;
    let thumbprint = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &cert);
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t": URL_SAFE_NO_PAD.encode(thumbprint)});
    let now = unix_now();
    let claims = json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": random_id()?,
        "nbf": now,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECS,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| CredentialError::Sign)?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// The first certificate (DER) and the RSA key of a PEM file.
fn certificate_and_key(path: &Path, pem: &[u8]) -> Result<(Vec<u8>, RsaKeyPair), CredentialError> {
    let format = |why| CredentialError::Format {
        path: path.to_owned(),
        why,
    };
    if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format("not PEM (a PKCS#12 / .pfx file?)"));
    }
    let mut cert = None;
    let mut key = None;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        match section.map_err(|_| format("malformed PEM"))? {
            (SectionKind::Certificate, der) if cert.is_none() => cert = Some(der),
            (kind @ (SectionKind::PrivateKey | SectionKind::RsaPrivateKey), der)
                if key.is_none() =>
            {
                key = Some((kind, der))
            }
            (SectionKind::EcPrivateKey, _) => {
                return Err(format("an EC key; Azure AD assertions here are RS256"));
            }
            _ => {}
        }
    }
    let cert = cert.ok_or_else(|| format("no CERTIFICATE block"))?;
    let Some((kind, der)) = key else {
        let encrypted = pem.windows(9).any(|w| w == b"ENCRYPTED");
        return Err(format(if encrypted {
            "the private key is encrypted"
        } else {
            "no PRIVATE KEY block"
        }));
    };
    let pair = match kind {
        SectionKind::PrivateKey => RsaKeyPair::from_pkcs8(&der),
        _ => RsaKeyPair::from_der(&der),
    }
    .map_err(|e| CredentialError::Key {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    Ok((cert, pair))
}

/// A random UUID-shaped `jti`.
fn random_id() -> Result<String, CredentialError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CredentialError::Sign)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_clientsecret_key_wins_and_a_single_key_is_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "p\n").unwrap();
        assert_eq!(read_secret(dir.path()).unwrap(), "p");
        std::fs::write(dir.path().join("other"), "o").unwrap();
        let err = read_secret(dir.path()).unwrap_err().to_string();
        assert!(err.contains("2 other keys"), "{err}");
        std::fs::write(dir.path().join(SECRET_KEY), "s3cret\n").unwrap();
        assert_eq!(read_secret(dir.path()).unwrap(), "s3cret");
    }

    #[test]
    fn kubernetes_own_entries_are_not_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("..2026_11_28")).unwrap();
        std::fs::write(dir.path().join("..data"), "").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        assert_eq!(read_secret(dir.path()).unwrap(), "x");
    }

    #[test]
    fn unusable_certificate_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let write = |bytes: &[u8]| std::fs::write(dir.path().join(CERTIFICATE_KEY), bytes).unwrap();
        let err = || {
            client_assertion(dir.path(), "c", "a")
                .unwrap_err()
                .to_string()
        };
        write(&[0x30, 0x82, 0x0a, 0x01, 0x02]);
        assert!(err().contains("PKCS#12"), "{}", err());
        write(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(err().contains("no PRIVATE KEY"), "{}", err());
        write(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n");
        assert!(err().contains("encrypted"), "{}", err());
        write(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert!(err().contains("RS256"), "{}", err());
    }

    #[test]
    fn jti_is_uuid_shaped_and_random() {
        let (a, b) = (random_id().unwrap(), random_id().unwrap());
        assert_eq!(a.len(), 36);
        assert_ne!(a, b);
    }
}
