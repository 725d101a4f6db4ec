//! Service principals of the Azure AD endpoint and the certificates they accept.

use ring::digest;

use crate::ids;

/// A certificate registered on a service principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredCert {
    /// SHA-1 of the DER certificate (`x5t`).
    pub sha1: Vec<u8>,
    /// SHA-256 of the DER certificate (`x5t#S256`), known when the DER is.
    pub sha256: Option<Vec<u8>>,
    /// The certificate itself; without it signatures cannot be checked.
    pub der: Option<Vec<u8>>,
}

/// An app registration that can use the client-credentials grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrincipal {
    /// Application (client) id.
    pub client_id: String,
    /// Service principal object id.
    pub object_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Accepted client secrets.
    pub secrets: Vec<String>,
    /// Accepted certificates for client assertions.
    pub certificates: Vec<RegisteredCert>,
}

// === impl RegisteredCert ===

impl RegisteredCert {
    /// A certificate known in full: thumbprints and signature checks.
    pub fn from_der(der: &[u8]) -> Self {
        Self {
            sha1: digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der)
                .as_ref()
                .to_vec(),
            sha256: Some(digest::digest(&digest::SHA256, der).as_ref().to_vec()),
            der: Some(der.to_vec()),
        }
    }

    /// A certificate known by its SHA-1 thumbprint (hex, as the portal shows it).
    pub fn from_thumbprint(hex: &str) -> Option<Self> {
        let sha1 = ids::from_hex(hex).filter(|b| b.len() == 20)?;
        Some(Self {
            sha1,
            sha256: None,
            der: None,
        })
    }
}

// === impl ServicePrincipal ===

impl ServicePrincipal {
    /// A principal in `tenant` with no credentials yet; its object id is
    /// derived from the client id.
    pub fn new(tenant_id: &str, client_id: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            object_id: ids::stable_guid(&format!("sp:{}", client_id.to_ascii_lowercase())),
            tenant_id: tenant_id.to_owned(),
            secrets: Vec::new(),
            certificates: Vec::new(),
        }
    }

    /// Adds an accepted client secret.
    pub fn with_secret(mut self, secret: &str) -> Self {
        self.secrets.push(secret.to_owned());
        self
    }

    /// Adds an accepted certificate.
    pub fn with_certificate(mut self, cert: RegisteredCert) -> Self {
        self.certificates.push(cert);
        self
    }
}
