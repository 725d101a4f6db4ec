//! ARM over HTTPS: GET bodies of VMs and scale sets, paths, api-version, bearer tokens, methods, rate-limit headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::arm::*;
use common::*;
use podid_azure_emulator::{ArmConfig, Target};
use serde_json::json;

#[tokio::test]
async fn get_returns_an_azure_shaped_vm_with_its_identities() {
    let a = start_arm(quick()).await;
    a.e.assign_to_vm("vm0", "id-a").unwrap();
    a.e.write(|s| s.set_system_identity(&Target::Vm("vm0".into()), true))
        .unwrap();
    let r = a.get(&a.vm("vm0")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    let id = a.e.read(|s| s.vm("vm0").unwrap().resource_id.clone());
    assert_eq!(v["id"], id);
    assert_eq!(v["name"], "vm0");
    assert_eq!(v["type"], "Microsoft.Compute/virtualMachines");
    assert_eq!(v["location"], "westeurope");
    assert_eq!(v["properties"]["provisioningState"], "Succeeded");
    assert!(v["properties"]["vmId"].is_string());
    let identity = &v["identity"];
    assert_eq!(identity["type"], "SystemAssigned, UserAssigned");
    assert!(identity["principalId"].is_string());
    assert_eq!(identity["tenantId"], a.e.read(|s| s.tenant_id.clone()));
    let user = &identity["userAssignedIdentities"][a.id("id-a")];
    assert_eq!(user["clientId"], client_id(&a.e, "id-a"));
    assert!(user["principalId"].is_string());
    assert!(r.header("x-ms-request-id").is_some());
}

#[tokio::test]
async fn get_returns_a_scale_set_with_its_sku_and_no_identity_block_when_it_has_none() {
    let a = start_arm(quick()).await;
    let v = a.get(&a.vmss("ss0")).await.json();
    assert_eq!(v["type"], "Microsoft.Compute/virtualMachineScaleSets");
    assert_eq!(v["sku"]["capacity"], 2);
    assert_eq!(v["properties"]["orchestrationMode"], "Uniform");
    assert!(v.get("identity").is_none(), "{v}");
}

#[tokio::test]
async fn paths_are_compared_case_insensitively() {
    let a = start_arm(quick()).await;
    let path = a.vm("vm0");
    let (resource, query) = path.split_once('?').unwrap();
    let upper = format!(
        "{}?{query}",
        resource.to_ascii_uppercase().replace("/VM0", "/vm0")
    );
    let r = a.get(&upper).await;
    assert_eq!(r.status, 200, "{upper}: {}", r.body);
    let lower_with_slash = format!("{}/?{query}", resource.to_ascii_lowercase());
    assert_eq!(a.get(&lower_with_slash).await.status, 200);
}

#[tokio::test]
async fn unknown_resources_are_404_resource_not_found() {
    let a = start_arm(quick()).await;
    let path = a.vm("vm0").replace("/vm0?", "/nope?");
    let r = a.get(&path).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "ResourceNotFound");
    // A scale-set instance is not a standalone VM.
    let instance = a.vmss("ss0").replace("?", "/virtualMachines/0?");
    assert_eq!(a.get(&instance).await.status, 404);
}

#[tokio::test]
async fn requests_without_a_well_formed_bearer_token_are_401() {
    let a = start_arm(quick()).await;
    for auth in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer "),
        Some("Bearer a b"),
    ] {
        let r = a.send("GET", &a.vm("vm0"), auth, "").await;
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "AuthenticationFailed");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .starts_with("Bearer authorization_uri=")
        );
    }
    assert_eq!(
        a.e.arm_gets(&Target::Vm("vm0".into())),
        0,
        "refused before counting"
    );
}

#[tokio::test]
async fn with_token_checks_only_unexpired_arm_tokens_of_the_tenant_pass() {
    let config = ArmConfig {
        check_tokens: true,
        ..quick()
    };
    let a = start_arm(config).await;
    let imds = a.e.imds_addr("vm0").unwrap();
    a.e.write(|s| s.set_system_identity(&Target::Vm("vm0".into()), true))
        .unwrap();
    let token = |resource: &str| {
        let resource = enc(resource);
        async move {
            let r = imds_get(
                imds,
                &format!("{TOKEN}?api-version=2018-02-01&resource={resource}"),
            )
            .await;
            format!("Bearer {}", r.json()["access_token"].as_str().unwrap())
        }
    };
    let arm = token("https://management.azure.com/").await;
    assert_eq!(
        a.send("GET", &a.vm("vm0"), Some(&arm), "").await.status,
        200
    );
    let vault = token("https://vault.azure.net").await;
    let r = a.send("GET", &a.vm("vm0"), Some(&vault), "").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"]["code"],
        "InvalidAuthenticationTokenAudience"
    );
    let r = a.send("GET", &a.vm("vm0"), Some(BEARER), "").await;
    assert_eq!(r.json()["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn api_version_is_required_and_must_be_a_date() {
    let a = start_arm(quick()).await;
    let bare = a.vm("vm0").split_once('?').unwrap().0.to_owned();
    let r = a.get(&bare).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "MissingApiVersionParameter");
    let r = a.get(&format!("{bare}?api-version=latest")).await;
    assert_eq!(r.json()["error"]["code"], "InvalidApiVersionParameter");
    assert_eq!(
        a.get(&format!("{bare}?api-version=2025-04-01-preview"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn only_get_and_patch_are_served_and_other_paths_are_404() {
    let a = start_arm(quick()).await;
    for method in ["PUT", "DELETE", "POST"] {
        let r = a.send(method, &a.vm("vm0"), Some(BEARER), "{}").await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.json()["error"]["code"], "MethodNotAllowed");
    }
    let r = a
        .get(&format!(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d?{API}"
        ))
        .await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["code"].is_string());
}

#[tokio::test]
async fn every_resource_answer_carries_the_remaining_rate_limit() {
    let a = start_arm(ArmConfig::default()).await;
    let r = a.get(&a.vm("vm0")).await;
    assert_eq!(
        r.header("x-ms-ratelimit-remaining-resource"),
        Some("Microsoft.Compute/GetSubscription;249")
    );
    let r = a
        .patch(&a.vm("vm0"), &json!({"identity": {"type": "None"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("x-ms-ratelimit-remaining-resource"),
        Some("Microsoft.Compute/UpdateVMResource;11,Microsoft.Compute/UpdateSubscription;1499")
    );
    let missing = a.get(&a.vm("vm0").replace("/vm0?", "/nope?")).await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .header("x-ms-ratelimit-remaining-resource")
            .is_some()
    );
    let unauthenticated = a.send("GET", &a.vm("vm0"), None, "").await;
    assert!(
        unauthenticated
            .header("x-ms-ratelimit-remaining-resource")
            .is_some()
    );
}
