//! Checks a certificate-signed client assertion the way Azure AD does: thumbprint, claims, RS256/PS256 signature.

use ring::signature;
use serde_json::Value;

use crate::ids;
use crate::jwt::{self, B64URL};
use crate::principal::{RegisteredCert, ServicePrincipal};
use base64::Engine;

/// The only `client_assertion_type` Azure AD accepts.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew Azure AD tolerates on `exp` and `nbf`.
const SKEW_SECS: u64 = 300;

/// What the assertion must say.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// `iss` and `sub`.
    pub client_id: &'a str,
    /// Accepted `aud` values (lower-case): the tenant's token endpoints.
    pub audiences: &'a [String],
    /// Unix seconds now.
    pub now: u64,
}

/// Why an assertion was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a JWT.
    #[error("The client assertion is not a valid JWT: {0}")]
    Malformed(jwt::JwtError),
    /// `alg` other than RS256 / PS256.
    #[error("The client assertion uses unsupported algorithm '{0}'; use RS256 or PS256.")]
    Algorithm(String),
    /// Header without `x5t` or `x5t#S256`.
    #[error("The client assertion header has no 'x5t' or 'x5t#S256' thumbprint.")]
    NoThumbprint,
    /// No registered certificate with that thumbprint.
    #[error(
        "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{0}']"
    )]
    UnknownKey(String),
    /// `aud` is not this tenant's token endpoint.
    #[error("The audience claim '{0}' of the client assertion does not match the token endpoint.")]
    Audience(String),
    /// `iss` or `sub` is not the client id.
    #[error("The client assertion's 'iss' and 'sub' claims must both be the client id.")]
    Issuer,
    /// No numeric `exp`.
    #[error("The client assertion has no 'exp' claim.")]
    NoExpiry,
    /// Outside `nbf`..`exp`.
    #[error(
        "Client assertion is not within its valid time range. Current time: {now}, assertion valid until {exp}."
    )]
    TimeRange {
        /// Unix seconds now.
        now: u64,
        /// The assertion's `exp`.
        exp: u64,
    },
    /// The signature does not verify with the registered certificate.
    #[error(
        "Client assertion contains an invalid signature. [Reason - The signature does not verify with the certificate.]"
    )]
    Signature,
    /// The registered certificate cannot be read (or holds no RSA key).
    #[error(
        "Client assertion contains an invalid signature. [Reason - The registered certificate cannot be used.]"
    )]
    Certificate,
}

impl AssertionError {
    /// The AADSTS code: 700024 for the time range, 700027 for the rest.
    pub fn code(&self) -> u32 {
        match self {
            Self::TimeRange { .. } => 700_024,
            _ => 700_027,
        }
    }
}

/// Verifies `assertion` for service principal `sp`. The signature is checked
/// when the certificate itself is registered; a principal registered by
/// thumbprint only gets the structural checks.
pub fn verify(
    assertion: &str,
    sp: &ServicePrincipal,
    expected: &Expected<'_>,
) -> Result<(), AssertionError> {
    let parts = jwt::split(assertion).map_err(AssertionError::Malformed)?;
    let alg = parts.header["alg"].as_str().unwrap_or_default();
    let algorithm: &'static dyn signature::VerificationAlgorithm = match alg {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        other => return Err(AssertionError::Algorithm(other.to_owned())),
    };
    let cert = find_certificate(&parts.header, &sp.certificates)?;
    check_claims(&parts.claims, expected)?;
    let Some(der) = &cert.der else {
        return Ok(());
    };
    let key = rsa_public_key(der)?;
    signature::UnparsedPublicKey::new(algorithm, key)
        .verify(parts.signing_input.as_bytes(), &parts.signature)
        .map_err(|_| AssertionError::Signature)
}

fn find_certificate<'a>(
    header: &Value,
    certs: &'a [RegisteredCert],
) -> Result<&'a RegisteredCert, AssertionError> {
    let thumbprint = |name: &str| header[name].as_str().and_then(|t| B64URL.decode(t).ok());
    if let Some(sha256) = thumbprint("x5t#S256") {
        return certs
            .iter()
            .find(|c| c.sha256.as_deref() == Some(sha256.as_slice()))
            .ok_or_else(|| AssertionError::UnknownKey(ids::hex(&sha256).to_uppercase()));
    }
    let sha1 = thumbprint("x5t").ok_or(AssertionError::NoThumbprint)?;
    certs
        .iter()
        .find(|c| c.sha1 == sha1)
        .ok_or_else(|| AssertionError::UnknownKey(ids::hex(&sha1).to_uppercase()))
}

fn check_claims(claims: &Value, expected: &Expected<'_>) -> Result<(), AssertionError> {
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let known = |a: &&str| expected.audiences.contains(&a.to_ascii_lowercase());
    if !audiences.iter().any(known) {
        return Err(AssertionError::Audience(audiences.join(" ")));
    }
    let is_client = |name: &str| claims[name].as_str() == Some(expected.client_id);
    if !is_client("iss") || !is_client("sub") {
        return Err(AssertionError::Issuer);
    }
    let exp = claims["exp"].as_u64().ok_or(AssertionError::NoExpiry)?;
    let nbf = claims["nbf"].as_u64().unwrap_or(0);
    let now = expected.now;
    if exp + SKEW_SECS < now || nbf > now + SKEW_SECS {
        return Err(AssertionError::TimeRange { now, exp });
    }
    Ok(())
}

/// The RSA public key (PKCS#1 `RSAPublicKey`) of a DER certificate.
fn rsa_public_key(der: &[u8]) -> Result<Vec<u8>, AssertionError> {
    const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| AssertionError::Certificate)?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != RSA_ENCRYPTION {
        return Err(AssertionError::Certificate);
    }
    Ok(spki.subject_public_key.data.to_vec())
}
