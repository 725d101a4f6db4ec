//! Workload identity federation as Entra ID checks it: an external issuer's token, matched against the app's federated credentials.
//!
//! Order of the checks, as Entra ID reports them: the token is a JWT (AADSTS50027),
//! some credential names its issuer (AADSTS700211), the issuer's key signed it
//! (AADSTS700027), it is within its time range (AADSTS700024), some credential of
//! that issuer has its subject, compared case-sensitively (AADSTS700213), and one
//! of those lists one of its audiences (AADSTS700212).

use ring::signature;
use serde_json::Value;

use crate::jwt::{self};
use crate::oidc::IssuerKey;

/// Clock skew Entra ID tolerates on `exp` and `nbf`.
const SKEW_SECS: u64 = 300;

/// The audience Entra ID documents for federated credentials.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// One federated identity credential of an application or managed identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedCredential {
    /// Issuer URL, compared exactly.
    pub issuer: String,
    /// Subject (`system:serviceaccount:NS:SA` for Kubernetes), compared exactly.
    pub subject: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
}

/// Why a federated assertion was refused; the text follows Entra ID's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FederatedError {
    /// Not a JWT, or an algorithm other than ES256.
    #[error("JWT token is invalid or malformed: {0}")]
    Malformed(String),
    /// No credential of the app names the token's issuer.
    #[error(
        "No matching federated identity record found for presented assertion issuer '{0}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
    )]
    Issuer(String),
    /// The issuer's key did not sign the token.
    #[error("Client assertion failed signature validation. [Reason - {0}]")]
    Signature(&'static str),
    /// Outside `nbf`..`exp`.
    #[error(
        "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}."
    )]
    TimeRange {
        /// Unix seconds now.
        now: u64,
        /// `nbf`.
        nbf: u64,
        /// `exp`.
        exp: u64,
    },
    /// No credential of that issuer has the token's subject.
    #[error(
        "No matching federated identity record found for presented assertion subject '{0}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion."
    )]
    Subject(String),
    /// No credential of that issuer and subject accepts the token's audience.
    #[error(
        "No matching federated identity record found for presented assertion audience '{0}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion."
    )]
    Audience(String),
}

impl FederatedError {
    /// The AADSTS number.
    pub fn code(&self) -> u32 {
        match self {
            Self::Malformed(_) => 50_027,
            Self::Issuer(_) => 700_211,
            Self::Signature(_) => 700_027,
            Self::TimeRange { .. } => 700_024,
            Self::Subject(_) => 700_213,
            Self::Audience(_) => 700_212,
        }
    }
}

/// Whether `assertion` looks like an external (federated) token rather than the app's
/// own certificate-signed assertion: a JWT whose header names no certificate thumbprint.
pub fn is_federated(assertion: &str) -> bool {
    jwt::split(assertion)
        .is_ok_and(|p| p.header.get("x5t").is_none() && p.header.get("x5t#S256").is_none())
}

/// Checks `assertion` against the app's `credentials` and the issuers' `keys` at `now`.
pub fn verify(
    assertion: &str,
    credentials: &[FederatedCredential],
    keys: &[IssuerKey],
    now: u64,
) -> Result<(), FederatedError> {
    let parts = jwt::split(assertion).map_err(|e| FederatedError::Malformed(e.to_string()))?;
    let claims = &parts.claims;
    let issuer = claims["iss"].as_str().unwrap_or_default();
    let of_issuer: Vec<&FederatedCredential> =
        credentials.iter().filter(|c| c.issuer == issuer).collect();
    if of_issuer.is_empty() {
        return Err(FederatedError::Issuer(issuer.to_owned()));
    }
    let alg = parts.header["alg"].as_str().unwrap_or_default();
    if alg != "ES256" {
        return Err(FederatedError::Malformed(format!(
            "algorithm '{alg}' is not supported by this stand-in's issuers (ES256)"
        )));
    }
    let kid = parts.header["kid"].as_str().unwrap_or_default();
    let key = keys
        .iter()
        .find(|k| k.issuer == issuer && k.kid == kid)
        .ok_or(FederatedError::Signature(
            "The key was not found in the issuer's keys.",
        ))?;
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &key.public_key)
        .verify(parts.signing_input.as_bytes(), &parts.signature)
        .map_err(|_| {
            FederatedError::Signature("The signature does not verify with the issuer's key.")
        })?;
    check_time(claims, now)?;
    let subject = claims["sub"].as_str().unwrap_or_default();
    let of_subject: Vec<&&FederatedCredential> =
        of_issuer.iter().filter(|c| c.subject == subject).collect();
    if of_subject.is_empty() {
        return Err(FederatedError::Subject(subject.to_owned()));
    }
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let accepted = |c: &&&FederatedCredential| {
        audiences
            .iter()
            .any(|a| c.audiences.iter().any(|ca| ca == a))
    };
    if !of_subject.iter().any(accepted) {
        return Err(FederatedError::Audience(audiences.join(",")));
    }
    Ok(())
}

fn check_time(claims: &Value, now: u64) -> Result<(), FederatedError> {
    let exp = claims["exp"].as_u64();
    let nbf = claims["nbf"].as_u64().unwrap_or(0);
    let range = |exp| FederatedError::TimeRange { now, nbf, exp };
    match exp {
        None => Err(range(0)),
        Some(exp) if exp + SKEW_SECS < now || nbf > now + SKEW_SECS => Err(range(exp)),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::oidc::{SaToken, ServiceAccountIssuer};

    const ISSUER: &str = "https://oidc.example/cluster-1/";
    const NOW: u64 = 1_900_000_000;

    fn credential(subject: &str) -> FederatedCredential {
        FederatedCredential {
            issuer: ISSUER.into(),
            subject: subject.into(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.into()],
        }
    }

    fn token(issuer: &ServiceAccountIssuer, sa: &str, aud: &[&str], issued_at: u64) -> String {
        issuer.mint(&SaToken {
            namespace: "apps",
            service_account: sa,
            audiences: aud,
            issued_at,
            lifetime_secs: 3600,
        })
    }

    fn check(issuer: &ServiceAccountIssuer, assertion: &str) -> Result<(), FederatedError> {
        verify(
            assertion,
            &[credential("system:serviceaccount:apps:reader")],
            &[issuer.key().clone()],
            NOW,
        )
    }

    #[test]
    fn a_kubernetes_token_for_the_recorded_subject_and_audience_is_accepted() {
        let issuer = ServiceAccountIssuer::generate(ISSUER).unwrap();
        let t = token(&issuer, "reader", &[TOKEN_EXCHANGE_AUDIENCE], NOW - 10);
        assert_eq!(check(&issuer, &t), Ok(()));
        assert!(is_federated(&t));
        let claims = jwt::decode_claims(&t);
        assert_eq!(claims["sub"], "system:serviceaccount:apps:reader");
        assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "reader");
    }

    #[test]
    fn each_mismatch_gets_entras_code() {
        let issuer = ServiceAccountIssuer::generate(ISSUER).unwrap();
        let other = ServiceAccountIssuer::generate("https://elsewhere.example/").unwrap();
        let impostor = ServiceAccountIssuer::generate(ISSUER).unwrap();
        let aud = [TOKEN_EXCHANGE_AUDIENCE];
        let good = token(&issuer, "reader", &aud, NOW);
        let (head, _) = good.rsplit_once('.').unwrap();
        let cases: Vec<(String, u32)> = vec![
            ("not-a-jwt".into(), 50_027),
            (token(&other, "reader", &aud, NOW), 700_211),
            (token(&impostor, "reader", &aud, NOW), 700_027),
            (format!("{head}.AAAA"), 700_027),
            (token(&issuer, "reader", &aud, NOW - 3600 - 301), 700_024),
            (token(&issuer, "reader", &aud, NOW + 301), 700_024),
            (
                issuer.sign(
                    &json!({"iss": ISSUER, "sub": "system:serviceaccount:apps:reader", "aud": aud}),
                ),
                700_024,
            ),
            (token(&issuer, "writer", &aud, NOW), 700_213),
            (token(&issuer, "Reader", &aud, NOW), 700_213),
            (
                token(&issuer, "reader", &["https://kubernetes.default.svc"], NOW),
                700_212,
            ),
        ];
        for (assertion, code) in cases {
            let e = check(&issuer, &assertion).unwrap_err();
            assert_eq!(e.code(), code, "{e}");
        }
    }

    #[test]
    fn a_certificate_assertion_is_not_federated() {
        let part = |v: &str| crate::jwt::B64URL.encode(v);
        let claims = part(r#"{"iss":"client","sub":"client"}"#);
        let with_thumbprint = format!("{}.{claims}.sig", part(r#"{"alg":"RS256","x5t":"abc"}"#));
        assert!(!is_federated(&with_thumbprint));
        assert!(!is_federated("not a jwt"));
    }

    use base64::Engine as _;
}
