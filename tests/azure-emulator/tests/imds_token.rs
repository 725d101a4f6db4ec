//! The IMDS token endpoint over real sockets: request rules, identity lookup, answer shape, claims.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use podid_azure_emulator::{Target, decode_claims};

#[tokio::test]
async fn probe_without_metadata_header_gets_a_json_400() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    let r = request(addr, "GET", &format!("{TOKEN}?{BASE_QUERY}"), &[], "").await;
    let v = r.assert_imds_error(400, "invalid_request");
    assert_eq!(
        v["error_description"],
        "Required metadata header not specified"
    );
    let r = request(
        addr,
        "GET",
        &format!("{TOKEN}?{BASE_QUERY}"),
        &[("Metadata", "false")],
        "",
    )
    .await;
    r.assert_imds_error(400, "invalid_request");
    assert_eq!(e.imds_token_requests("vm0"), 0);
}

#[tokio::test]
async fn api_version_and_resource_are_required() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    let no_version = imds_get(addr, &format!("{TOKEN}?resource=https://vault.azure.net")).await;
    no_version.assert_imds_error(400, "invalid_request");
    let bad_version = imds_get(
        addr,
        &format!("{TOKEN}?api-version=2099-01-01&resource=https://x"),
    )
    .await;
    bad_version.assert_imds_error(400, "invalid_request");
    let no_resource = imds_get(addr, &format!("{TOKEN}?api-version=2018-02-01")).await;
    no_resource.assert_imds_error(400, "invalid_request");
    let bad_resource = imds_get(
        addr,
        &format!("{TOKEN}?api-version=2018-02-01&resource=vault"),
    )
    .await;
    let v = bad_resource.assert_imds_error(400, "invalid_resource");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS500011")
    );
}

#[tokio::test]
async fn selectors_are_mutually_exclusive() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    for extra in [
        "&client_id=a&object_id=b",
        "&client_id=a&msi_res_id=b",
        "&object_id=a&mi_res_id=b",
        "&msi_res_id=a&mi_res_id=a",
    ] {
        imds_token(addr, extra)
            .await
            .assert_imds_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn duplicate_query_parameters_are_refused() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    let addr = e.imds_addr("vm0").unwrap();
    let id = client_id(&e, "id-a");
    let dup = imds_token(addr, &format!("&client_id={id}&client_id={id}")).await;
    dup.assert_imds_error(400, "invalid_request");
    let dup = imds_token(addr, "&resource=https://management.azure.com").await;
    dup.assert_imds_error(400, "invalid_request");
}

#[tokio::test]
async fn x_forwarded_for_is_refused() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    let addr = e.imds_addr("vm0").unwrap();
    let headers = [("Metadata", "true"), ("X-Forwarded-For", "10.0.0.1")];
    let r = request(addr, "GET", &format!("{TOKEN}?{BASE_QUERY}"), &headers, "").await;
    r.assert_imds_error(400, "invalid_request");
}

#[tokio::test]
async fn only_get_is_allowed() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    for method in ["POST", "PUT", "DELETE"] {
        let r = request(
            addr,
            method,
            &format!("{TOKEN}?{BASE_QUERY}"),
            &[("Metadata", "true")],
            "",
        )
        .await;
        r.assert_imds_error(405, "invalid_request");
    }
}

#[tokio::test]
async fn identity_is_found_exactly_while_assigned_to_the_vm() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    let selector = format!("&client_id={}", client_id(&e, "id-a"));
    let v = imds_token(addr, &selector)
        .await
        .assert_imds_error(400, "invalid_request");
    assert_eq!(v["error_description"], "Identity not found");
    e.assign_to_vm("vm0", "id-a").unwrap();
    assert_eq!(imds_token(addr, &selector).await.status, 200);
    // Another VM does not see it.
    let other = imds_token(e.imds_addr("vm1").unwrap(), &selector).await;
    other.assert_imds_error(400, "invalid_request");
    e.unassign_from_vm("vm0", "id-a").unwrap();
    imds_token(addr, &selector)
        .await
        .assert_imds_error(400, "invalid_request");
}

#[tokio::test]
async fn scale_set_assignment_reaches_every_instance_by_any_selector() {
    let e = start().await;
    e.assign_to_scale_set("ss0", "id-b").unwrap();
    let selectors = [
        format!("&client_id={}", client_id(&e, "id-b").to_uppercase()),
        format!(
            "&object_id={}",
            e.read(|s| s.identity("id-b").unwrap().principal_id.clone())
        ),
        format!("&msi_res_id={}", enc(&resource_id(&e, "id-b"))),
        format!(
            "&mi_res_id={}",
            enc(&resource_id(&e, "id-b").to_lowercase())
        ),
    ];
    for vm in ["ss0-0", "ss0-1"] {
        for selector in &selectors {
            let r = imds_token(e.imds_addr(vm).unwrap(), selector).await;
            assert_eq!(r.status, 200, "{vm} {selector}: {}", r.body);
            assert_eq!(r.json()["client_id"], client_id(&e, "id-b"));
        }
    }
    let standalone = imds_token(e.imds_addr("vm0").unwrap(), &selectors[0]).await;
    standalone.assert_imds_error(400, "invalid_request");
    e.unassign(&Target::ScaleSet("ss0".into()), "id-b").unwrap();
    let gone = imds_token(e.imds_addr("ss0-1").unwrap(), &selectors[0]).await;
    gone.assert_imds_error(400, "invalid_request");
}

#[tokio::test]
async fn without_selector_the_only_identity_is_used_and_several_are_ambiguous() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    let none = imds_token(addr, "")
        .await
        .assert_imds_error(400, "invalid_request");
    assert_eq!(none["error_description"], "Identity not found");
    e.assign_to_vm("vm0", "id-a").unwrap();
    let one = imds_token(addr, "").await;
    assert_eq!(one.json()["client_id"], client_id(&e, "id-a"));
    e.assign_to_vm("vm0", "id-b").unwrap();
    let two = imds_token(addr, "")
        .await
        .assert_imds_error(400, "invalid_request");
    assert!(
        two["error_description"]
            .as_str()
            .unwrap()
            .starts_with("Multiple user assigned identities exist")
    );
}

#[tokio::test]
async fn system_assigned_identity_is_the_default_when_present() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    e.assign_to_vm("vm0", "id-b").unwrap();
    e.write(|s| s.set_system_identity(&Target::Vm("vm0".into()), true))
        .unwrap();
    let r = imds_token(e.imds_addr("vm0").unwrap(), "").await;
    let system = e.read(|s| s.vm("vm0").unwrap().identity.system.clone().unwrap());
    assert_eq!(r.json()["client_id"], system.client_id);
    let claims = decode_claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(
        claims["xms_mirid"],
        e.read(|s| s.vm("vm0").unwrap().resource_id.clone())
    );
}

#[tokio::test]
async fn success_has_imds_shape_with_every_value_a_string() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    let r = imds_token(e.imds_addr("vm0").unwrap(), "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    let keys = [
        "access_token",
        "refresh_token",
        "expires_in",
        "expires_on",
        "ext_expires_in",
        "not_before",
        "resource",
        "token_type",
        "client_id",
    ];
    assert_eq!(v.as_object().unwrap().len(), keys.len());
    for key in keys {
        assert!(v[key].is_string(), "{key} is not a string: {v}");
    }
    assert_eq!(v["refresh_token"], "");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["resource"], "https://vault.azure.net");
    let expires_in: u64 = v["expires_in"].as_str().unwrap().parse().unwrap();
    let expires_on: u64 = v["expires_on"].as_str().unwrap().parse().unwrap();
    let not_before: u64 = v["not_before"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires_in, 86_400);
    assert_eq!(expires_on, not_before + expires_in);
}

#[tokio::test]
async fn token_claims_name_identity_resource_and_a_unique_issue() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    e.set_imds_token_lifetime(std::time::Duration::from_secs(600));
    let addr = e.imds_addr("vm0").unwrap();
    let first = imds_token(addr, "").await.json();
    let second = imds_token(addr, "").await.json();
    let a = decode_claims(first["access_token"].as_str().unwrap());
    let b = decode_claims(second["access_token"].as_str().unwrap());
    let identity = e.read(|s| s.identity("id-a").unwrap().clone());
    assert_eq!(a["aud"], "https://vault.azure.net");
    assert_eq!(a["oid"], identity.principal_id);
    assert_eq!(a["appid"], identity.client_id);
    assert_eq!(a["xms_mirid"], identity.resource_id);
    assert_eq!(a["xms_mi_res_id"], identity.resource_id);
    assert_eq!(a["tid"], e.read(|s| s.tenant_id.clone()));
    assert_eq!(a["exp"].as_u64().unwrap() - a["iat"].as_u64().unwrap(), 600);
    assert_eq!(first["expires_in"], "600");
    assert!(a["nbf"].is_u64());
    assert_ne!(a["uti"], b["uti"]);
}

#[tokio::test]
async fn requests_and_issued_tokens_are_counted_per_vm_and_identity() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    let addr = e.imds_addr("vm0").unwrap();
    for _ in 0..3 {
        assert_eq!(imds_token(addr, "").await.status, 200);
    }
    let missing = format!("&client_id={}", client_id(&e, "id-c"));
    imds_token(addr, &missing)
        .await
        .assert_imds_error(400, "invalid_request");
    assert_eq!(e.imds_token_requests("vm0"), 4);
    assert_eq!(e.imds_tokens_issued("vm0", "id-a"), 3);
    assert_eq!(e.imds_tokens_issued("vm0", &resource_id(&e, "id-a")), 3);
    assert_eq!(e.imds_tokens_issued("vm0", "id-c"), 0);
    assert_eq!(e.imds_token_requests("vm1"), 0);
    e.reset_counters();
    assert_eq!(e.imds_token_requests("vm0"), 0);
}

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    imds_get(addr, "/metadata/identity/oauth2/tokens")
        .await
        .assert_imds_error(404, "not_found");
    imds_get(addr, "/")
        .await
        .assert_imds_error(404, "not_found");
}
