//! Workload identity federation at the Azure AD endpoint over real sockets: a cluster's service-account token exchanged for an access token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::aad::*;
use common::*;
use podid_azure_emulator::aad::federated::{FederatedCredential, TOKEN_EXCHANGE_AUDIENCE};
use podid_azure_emulator::oidc::{SaToken, ServiceAccountIssuer};
use podid_azure_emulator::{Emulator, decode_claims, file, ids};

const ISSUER: &str = "https://oidc.podid.test/cluster-1";
const SUBJECT: &str = "system:serviceaccount:apps:reader";

/// The sample world with federated credentials for managed identity id-a and principal SP_CLIENT.
async fn start_federated(issuer: &ServiceAccountIssuer) -> Emulator {
    let mut state = world();
    let id_a = state.identity("id-a").unwrap().client_id.clone();
    for client in [id_a.as_str(), SP_CLIENT] {
        let credential = FederatedCredential {
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.into()],
        };
        state.add_federated_credential(client, credential);
    }
    state.add_issuer_key(issuer.key().clone());
    start_with(state).await
}

fn sa_token(issuer: &ServiceAccountIssuer, sa: &str) -> String {
    issuer.mint(&SaToken {
        namespace: "apps",
        service_account: sa,
        audiences: &[TOKEN_EXCHANGE_AUDIENCE],
        issued_at: ids::unix_now(),
        lifetime_secs: 3600,
    })
}

async fn exchange(e: &Emulator, client: &str, assertion: &str) -> Reply {
    let form = [
        ("client_id", client),
        ("grant_type", "client_credentials"),
        ("scope", "https://vault.azure.net/.default"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ];
    post_token(e, &tenant(e), &form).await
}

#[tokio::test]
async fn a_service_account_token_is_exchanged_for_the_managed_identitys_and_the_apps_tokens() {
    let issuer = ServiceAccountIssuer::generate(ISSUER).unwrap();
    let e = start_federated(&issuer).await;
    let mi = e.read(|s| s.identity("id-a").unwrap().clone());
    let r = exchange(&e, &mi.client_id, &sa_token(&issuer, "reader")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["token_type"].as_str(), v["expires_in"].as_u64()),
        (Some("Bearer"), Some(3599))
    );
    let claims = decode_claims(v["access_token"].as_str().unwrap());
    assert_eq!(claims["appid"], mi.client_id.as_str());
    assert_eq!(claims["oid"], mi.principal_id.as_str());
    assert_eq!(claims["tid"], tenant(&e));
    assert_eq!(claims["aud"], "https://vault.azure.net");
    assert_eq!(claims["xms_mirid"], mi.resource_id.as_str());
    let r = exchange(&e, SP_CLIENT, &sa_token(&issuer, "reader")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let claims = decode_claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["appid"], SP_CLIENT);
    assert!(claims["xms_mirid"].is_null(), "{claims}");
}

#[tokio::test]
async fn tokens_of_another_subject_issuer_or_key_and_apps_without_credentials_are_refused() {
    let issuer = ServiceAccountIssuer::generate(ISSUER).unwrap();
    let e = start_federated(&issuer).await;
    let id_a = client_id(&e, "id-a");
    let id_b = client_id(&e, "id-b");
    let impostor = ServiceAccountIssuer::generate(ISSUER).unwrap();
    let elsewhere = ServiceAccountIssuer::generate("https://evil.example").unwrap();
    let cases = [
        (id_a.as_str(), sa_token(&issuer, "writer"), 700_213),
        (id_a.as_str(), sa_token(&impostor, "reader"), 700_027),
        (id_a.as_str(), sa_token(&elsewhere, "reader"), 700_211),
        // id-b has no federated credential at all: the token is no certificate assertion either.
        (id_b.as_str(), sa_token(&issuer, "reader"), 700_027),
        // Not a JWT: no issuer to tell it from a certificate assertion, refused as one.
        (id_a.as_str(), "garbage.not.jwt".to_owned(), 700_027),
    ];
    for (client, assertion, code) in cases {
        let r = exchange(&e, client, &assertion).await;
        assert_aad_error(&r, 401, "invalid_client", code);
        assert!(r.json()["access_token"].is_null());
    }
}

#[test]
fn the_world_file_declares_issuers_and_federated_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = ServiceAccountIssuer::generate(ISSUER).unwrap();
    std::fs::write(dir.path().join("issuer.pk8"), issuer.pkcs8()).unwrap();
    let yaml = format!(
        "identities:\n  - name: id-f\n    federatedCredentials:\n      - {{issuer: {ISSUER}, subject: '{SUBJECT}'}}\n\
         servicePrincipals:\n  - clientId: {SP_CLIENT}\n    federatedCredentials:\n      - {{issuer: {ISSUER}, subject: '{SUBJECT}', audiences: [api://custom]}}\n\
         oidcIssuers:\n  - {{issuer: {ISSUER}, keyFile: issuer.pk8}}\n"
    );
    let path = dir.path().join("world.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (state, _) = file::load(&path).unwrap();
    let mi = state.identity("id-f").unwrap().client_id.clone();
    assert_eq!(
        state.federated_credentials(&mi)[0].audiences,
        [TOKEN_EXCHANGE_AUDIENCE]
    );
    assert_eq!(
        state.federated_credentials(SP_CLIENT)[0].audiences,
        ["api://custom"]
    );
    assert_eq!(state.issuer_keys(), [issuer.key().clone()]);
    std::fs::write(dir.path().join("issuer.pk8"), b"not a key").unwrap();
    let err = file::load(&path).unwrap_err().to_string();
    assert!(err.contains("PKCS#8 ECDSA P-256"), "{err}");
}
