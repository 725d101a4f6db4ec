//! A cluster's service-account token issuer, as Entra ID sees it: an issuer URL and its signing key.
//!
//! Tests hold the private half and mint tokens shaped like the kube-apiserver's
//! projected service-account tokens; the stand-in's token endpoint holds the public
//! half (what Entra ID reads from the issuer's JWKS) to check federated assertions.
//! ES256 (P-256), which the kube-apiserver supports for service-account keys: ring
//! can generate such keys, not RSA ones.

use std::fmt;

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::json;

use crate::ids;
use crate::jwt::B64URL;

/// The issuer's public side: what the token endpoint verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerKey {
    /// The issuer URL (`iss` of its tokens), compared exactly.
    pub issuer: String,
    /// Key id (`kid`).
    pub kid: String,
    /// The uncompressed P-256 public point.
    pub public_key: Vec<u8>,
}

/// Why an issuer key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("OIDC issuer {issuer:?}: the key is not a PKCS#8 ECDSA P-256 key ({why})")]
pub struct IssuerError {
    issuer: String,
    why: String,
}

/// A service-account token issuer with its private key.
pub struct ServiceAccountIssuer {
    key: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    public: IssuerKey,
}

/// What a minted token says; the defaults are the kube-apiserver's for a projected volume.
#[derive(Clone, Debug)]
pub struct SaToken<'a> {
    /// Pod namespace.
    pub namespace: &'a str,
    /// Service account name.
    pub service_account: &'a str,
    /// `aud`.
    pub audiences: &'a [&'a str],
    /// `iat` and `nbf`.
    pub issued_at: u64,
    /// Seconds from `iat` to `exp`.
    pub lifetime_secs: u64,
}

// === impl ServiceAccountIssuer ===

impl ServiceAccountIssuer {
    /// A new issuer at `issuer` with a fresh key.
    pub fn generate(issuer: &str) -> Result<Self, IssuerError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| error(issuer, &e.to_string()))?;
        Self::from_pkcs8(issuer, pkcs8.as_ref())
    }

    /// The issuer at `issuer` with a PKCS#8 DER key.
    pub fn from_pkcs8(issuer: &str, pkcs8: &[u8]) -> Result<Self, IssuerError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| error(issuer, &e.to_string()))?;
        let public_key = key.public_key().as_ref().to_vec();
        let kid =
            B64URL.encode(&ring::digest::digest(&ring::digest::SHA256, &public_key).as_ref()[..12]);
        Ok(Self {
            key,
            pkcs8: pkcs8.to_vec(),
            public: IssuerKey {
                issuer: issuer.to_owned(),
                kid,
                public_key,
            },
        })
    }

    /// The PKCS#8 DER private key (the stand-in's world file names such a file).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public side.
    pub fn key(&self) -> &IssuerKey {
        &self.public
    }

    /// A signed token with the kube-apiserver's claims for a projected service-account token.
    pub fn mint(&self, t: &SaToken<'_>) -> String {
        let sub = format!(
            "system:serviceaccount:{}:{}",
            t.namespace, t.service_account
        );
        let claims = json!({
            "aud": t.audiences,
            "exp": t.issued_at + t.lifetime_secs,
            "iat": t.issued_at,
            "nbf": t.issued_at,
            "iss": self.public.issuer,
            "jti": ids::random_guid(),
            "kubernetes.io": {
                "namespace": t.namespace,
                "serviceaccount": {"name": t.service_account, "uid": ids::stable_guid(&sub)},
            },
            "sub": sub,
        });
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests forge tokens with it).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.public.kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        // Signing with a valid key only fails on an RNG failure; an empty signature is then refused.
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default();
        format!("{input}.{}", B64URL.encode(signature))
    }
}

impl fmt::Debug for ServiceAccountIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountIssuer")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

fn error(issuer: &str, why: &str) -> IssuerError {
    IssuerError {
        issuer: issuer.to_owned(),
        why: why.to_owned(),
    }
}
