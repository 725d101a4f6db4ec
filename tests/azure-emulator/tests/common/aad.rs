//! Azure AD helpers: a world with certificate principals, signed client assertions, form posts, error assertions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use super::*;
use base64::Engine;
use podid_azure_emulator::{B64URL, Emulator, RegisteredCert, ServicePrincipal, ids};
use ring::digest;
use ring::signature::{self, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

pub const CERT_CLIENT: &str = "bbbbbbbb-0000-4000-8000-000000000002";
pub const THUMB_CLIENT: &str = "cccccccc-0000-4000-8000-000000000003";
pub const SP_CERT: &str = include_str!("../fixtures/sp-cert.pem");
pub const SP_KEY: &str = include_str!("../fixtures/sp-key.pem");
pub const OTHER_KEY: &str = include_str!("../fixtures/other-key.pem");

pub fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The sample world plus a principal registered with its certificate and
/// one registered by SHA-1 thumbprint only.
pub async fn start_aad() -> Emulator {
    let mut state = world();
    let cert = RegisteredCert::from_der(&der(SP_CERT));
    let by_thumb = RegisteredCert::from_thumbprint(&ids::hex(&cert.sha1)).unwrap();
    state.insert_service_principal(
        ServicePrincipal::new(&state.tenant_id.clone(), CERT_CLIENT).with_certificate(cert),
    );
    state.insert_service_principal(
        ServicePrincipal::new(&state.tenant_id.clone(), THUMB_CLIENT).with_certificate(by_thumb),
    );
    start_with(state).await
}

pub fn tenant(e: &Emulator) -> String {
    e.read(|s| s.tenant_id.clone())
}

pub fn token_url(e: &Emulator, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", e.aad_authority().unwrap())
}

/// A client assertion signed (RS256) with `key_pem`, carrying `header` fields.
pub fn assertion(key_pem: &str, header: Value, claims: Value) -> String {
    let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let pair = RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()).unwrap();
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let mut sig = vec![0; pair.public().modulus_len()];
    let rng = ring::rand::SystemRandom::new();
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &rng,
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", B64URL.encode(sig))
}

pub fn x5t() -> String {
    B64URL.encode(digest::digest(
        &digest::SHA1_FOR_LEGACY_USE_ONLY,
        &der(SP_CERT),
    ))
}

pub fn good_claims(e: &Emulator, client: &str) -> Value {
    let now = ids::unix_now();
    json!({"aud": token_url(e, &tenant(e)), "iss": client, "sub": client, "jti": ids::random_guid(),
           "nbf": now, "iat": now, "exp": now + 600})
}

pub async fn post_token(e: &Emulator, tenant: &str, form: &[(&str, &str)]) -> Reply {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let addr: SocketAddr = e.aad_addr().unwrap();
    let headers = [
        ("Host", &*addr.to_string()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    request(
        addr,
        "POST",
        &format!("/{tenant}/oauth2/v2.0/token"),
        &headers,
        &body,
    )
    .await
}

pub async fn with_secret(e: &Emulator, client: &str, secret: &str) -> Reply {
    let t = tenant(e);
    let form = [
        ("client_id", client),
        ("grant_type", "client_credentials"),
        ("scope", "https://vault.azure.net/.default"),
        ("client_secret", secret),
    ];
    post_token(e, &t, &form).await
}

pub async fn with_assertion(e: &Emulator, client: &str, assertion: &str) -> Reply {
    let t = tenant(e);
    let form = [
        ("client_id", client),
        ("grant_type", "client_credentials"),
        ("scope", "https://vault.azure.net/.default"),
        ("client_assertion", assertion),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
    ];
    post_token(e, &t, &form).await
}

/// Asserts Azure AD's error shape and code.
pub fn assert_aad_error(r: &Reply, status: u16, error: &str, code: u64) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"], error, "{v}");
    assert_eq!(v["error_codes"], json!([code]), "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&format!("AADSTS{code}:"))
    );
    for key in ["trace_id", "correlation_id", "timestamp"] {
        assert!(v[key].is_string(), "{key}: {v}");
    }
}
