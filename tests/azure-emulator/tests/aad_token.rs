//! The Azure AD endpoint over real sockets: secrets, error codes, discovery, faults, HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::aad::*;
use common::*;
use podid_azure_emulator::{Emulator, EmulatorConfig, Fault, ImdsLimits, decode_claims};
use serde_json::json;

#[tokio::test]
async fn secret_grant_returns_numbers_and_a_token_for_the_resource() {
    let e = start_aad().await;
    let r = with_secret(&e, SP_CLIENT, SP_SECRET).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["ext_expires_in"], 3599);
    let claims = decode_claims(v["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://vault.azure.net");
    assert_eq!(claims["appid"], SP_CLIENT);
    assert_eq!(claims["tid"], tenant(&e));
    assert_eq!(e.aad_token_requests(SP_CLIENT), 1);
}

#[tokio::test]
async fn wrong_secret_unknown_client_and_unknown_tenant_have_their_codes() {
    let e = start_aad().await;
    assert_aad_error(
        &with_secret(&e, SP_CLIENT, "wrong").await,
        401,
        "invalid_client",
        7_000_215,
    );
    let unknown = with_secret(&e, "dddddddd-0000-4000-8000-000000000009", SP_SECRET).await;
    assert_aad_error(&unknown, 400, "unauthorized_client", 700_016);
    let form = [
        ("client_id", SP_CLIENT),
        ("grant_type", "client_credentials"),
        ("scope", "https://vault.azure.net/.default"),
        ("client_secret", SP_SECRET),
    ];
    let r = post_token(&e, "99999999-0000-4000-8000-000000000000", &form).await;
    assert_aad_error(&r, 400, "invalid_request", 90_002);
    assert_aad_error(
        &post_token(&e, "common", &form).await,
        400,
        "invalid_request",
        50_059,
    );
}

#[tokio::test]
async fn malformed_grants_are_refused() {
    let e = start_aad().await;
    let t = tenant(&e);
    let (id, cc, vault) = (
        ("client_id", SP_CLIENT),
        ("grant_type", "client_credentials"),
        ("scope", "https://vault.azure.net/.default"),
    );
    let secret = ("client_secret", SP_SECRET);
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str, u64);
    let cases: [Case; 5] = [
        (&[id, cc, secret], 400, "invalid_request", 900_144),
        (
            &[id, cc, ("scope", "https://vault.azure.net"), secret],
            400,
            "invalid_scope",
            1_002_012,
        ),
        (
            &[id, ("grant_type", "password"), vault, secret],
            400,
            "unsupported_grant_type",
            70_003,
        ),
        (&[id, cc, vault], 401, "invalid_client", 7_000_218),
        (&[cc, vault, secret], 400, "invalid_request", 900_144),
    ];
    for (form, status, error, code) in cases {
        assert_aad_error(&post_token(&e, &t, form).await, status, error, code);
    }
    let addr = e.aad_addr().unwrap();
    let get = request(addr, "GET", &format!("/{t}/oauth2/v2.0/token"), &[], "").await;
    assert_aad_error(&get, 400, "invalid_request", 900_561);
}

#[tokio::test]
async fn openid_configuration_points_at_the_emulator() {
    let e = start_aad().await;
    let addr = e.aad_addr().unwrap();
    let t = tenant(&e);
    let host = [("Host", &*addr.to_string())];
    let path = format!("/{t}/v2.0/.well-known/openid-configuration");
    let conf = request(addr, "GET", &path, &host, "").await;
    assert_eq!(conf.status, 200);
    let conf = conf.json();
    assert_eq!(conf["token_endpoint"], token_url(&e, &t));
    assert_eq!(conf["issuer"], format!("http://{addr}/{t}/v2.0"));
    let authorize = conf["authorization_endpoint"].as_str().unwrap();
    assert!(authorize.starts_with(&format!("http://{addr}/")));
    let path = "/organizations/v2.0/.well-known/openid-configuration";
    let common = request(addr, "GET", path, &host, "").await;
    assert_eq!(
        common.json()["issuer"],
        format!("http://{addr}/{{tenantid}}/v2.0")
    );
    let path = "/nope/v2.0/.well-known/openid-configuration";
    let unknown = request(addr, "GET", path, &host, "").await;
    assert_aad_error(&unknown, 400, "invalid_request", 90_002);
    let posted = request(addr, "POST", path, &host, "").await;
    assert_aad_error(&posted, 405, "invalid_request", 900_561);
    let unknown_path = request(addr, "GET", "/x/y/z/w", &host, "").await;
    assert_aad_error(&unknown_path, 404, "invalid_request", 900_561);
}

#[tokio::test]
async fn instance_discovery_names_the_emulator_as_its_own_alias() {
    let e = start_aad().await;
    let addr = e.aad_addr().unwrap();
    let t = tenant(&e);
    let host = [("Host", &*addr.to_string())];
    let wanted = enc(&format!("http://{addr}/{t}/oauth2/v2.0/authorize"));
    let target =
        format!("/common/discovery/instance?api-version=1.1&authorization_endpoint={wanted}");
    let inst = request(addr, "GET", &target, &host, "").await.json();
    let expected = format!("http://{addr}/{t}/v2.0/.well-known/openid-configuration");
    assert_eq!(inst["tenant_discovery_endpoint"], expected);
    assert_eq!(inst["metadata"][0]["aliases"], json!([addr.to_string()]));
    let keys = request(addr, "GET", &format!("/{t}/discovery/v2.0/keys"), &host, "").await;
    assert_eq!(keys.json()["keys"], json!([]));
}

#[tokio::test]
async fn injected_faults_and_counters_cover_azure_ad() {
    let e = start_aad().await;
    e.inject_aad_faults(Fault::status(503).retry_after(3), 1);
    let r = with_secret(&e, SP_CLIENT, SP_SECRET).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(with_secret(&e, SP_CLIENT, SP_SECRET).await.status, 200);
    assert_eq!(e.aad_token_requests(SP_CLIENT), 2);
}

#[tokio::test]
async fn azure_ad_is_served_over_https() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_pem = certified.cert.pem();
    let tls = podid_azure_emulator::tls_config_from_pem(
        cert_pem.as_bytes(),
        certified.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let config = EmulatorConfig::loopback(world())
        .with_limits(ImdsLimits::unlimited())
        .with_aad_tls(tls);
    let e = Emulator::start(config).await.unwrap();
    let authority = e.aad_authority().unwrap();
    assert!(authority.starts_with("https://localhost:"));
    let t = tenant(&e);
    let body = format!(
        "client_id={SP_CLIENT}&grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default&client_secret={SP_SECRET}"
    );
    let r = https_request(
        e.aad_addr().unwrap(),
        &cert_pem,
        "POST",
        &format!("/{t}/oauth2/v2.0/token"),
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let conf = https_request(
        e.aad_addr().unwrap(),
        &cert_pem,
        "GET",
        &format!("/{t}/v2.0/.well-known/openid-configuration"),
        "",
    )
    .await;
    assert_eq!(
        conf.json()["token_endpoint"],
        format!("{authority}/{t}/oauth2/v2.0/token")
    );
}
