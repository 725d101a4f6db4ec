//! IMDS paths other than the token, and serving IMDS on a listener bound beforehand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use podid_azure_emulator::{Emulator, EmulatorConfig, ImdsLimits, Listen};

#[tokio::test]
async fn instance_document_names_a_standalone_vm() {
    let e = start().await;
    let r = imds_get(
        e.imds_addr("vm0").unwrap(),
        "/metadata/instance?api-version=2021-02-01",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let compute = &r.json()["compute"];
    let vm = e.read(|s| s.vm("vm0").unwrap().clone());
    assert_eq!(compute["name"], "vm0");
    assert_eq!(compute["resourceId"], vm.resource_id);
    assert_eq!(compute["subscriptionId"], vm.subscription_id);
    assert_eq!(compute["resourceGroupName"], vm.resource_group);
    assert_eq!(compute["vmScaleSetName"], "");
}

#[tokio::test]
async fn instance_document_names_the_scale_set_of_an_instance() {
    let e = start().await;
    let addr = e.imds_addr("ss0-1").unwrap();
    let r = imds_get(addr, "/metadata/instance?api-version=2021-02-01").await;
    let compute = &r.json()["compute"];
    assert_eq!(compute["vmScaleSetName"], "ss0");
    assert!(
        compute["resourceId"]
            .as_str()
            .unwrap()
            .ends_with("/virtualMachineScaleSets/ss0/virtualMachines/1")
    );
    let leaf = imds_get(
        addr,
        "/metadata/instance/compute/vmScaleSetName?api-version=2021-02-01&format=text",
    )
    .await;
    assert_eq!(leaf.status, 200);
    assert_eq!(leaf.body, "ss0");
    let missing = imds_get(
        addr,
        "/metadata/instance/compute/nope?api-version=2021-02-01",
    )
    .await;
    missing.assert_imds_error(404, "not_found");
    let garbage = imds_get(addr, "/metadata/instance/%FF%FE?api-version=2021-02-01").await;
    garbage.assert_imds_error(404, "not_found");
}

#[tokio::test]
async fn metadata_paths_follow_the_header_rules() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    for path in [
        "/metadata/instance?api-version=2021-02-01",
        "/metadata/versions",
        "/metadata/identity/info?api-version=2018-02-01",
        "/metadata/attested/document?api-version=2021-02-01",
    ] {
        request(addr, "GET", path, &[], "")
            .await
            .assert_imds_error(400, "invalid_request");
        let xff = [("Metadata", "true"), ("X-Forwarded-For", "1.2.3.4")];
        request(addr, "GET", path, &xff, "")
            .await
            .assert_imds_error(400, "invalid_request");
        let post = request(addr, "POST", path, &[("Metadata", "true")], "").await;
        post.assert_imds_error(405, "invalid_request");
        assert_eq!(imds_get(addr, path).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn metadata_without_api_version_lists_the_newest_versions() {
    let e = start().await;
    let r = imds_get(e.imds_addr("vm0").unwrap(), "/metadata/instance").await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("api-version was not specified")
    );
    assert!(
        v["newest-versions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

#[tokio::test]
async fn versions_identity_info_and_attested_document() {
    let e = start().await;
    let addr = e.imds_addr("vm0").unwrap();
    let versions = imds_get(addr, "/metadata/versions").await.json();
    let list = versions["apiVersions"].as_array().unwrap();
    assert!(list.iter().any(|v| v == "2018-02-01") && list.iter().any(|v| v == "2019-08-01"));
    let info = imds_get(addr, "/metadata/identity/info?api-version=2018-02-01")
        .await
        .json();
    assert_eq!(info["tenantId"], e.read(|s| s.tenant_id.clone()));
    let attested = imds_get(
        addr,
        "/metadata/attested/document?api-version=2021-02-01&nonce=42",
    )
    .await
    .json();
    assert_eq!(attested["encoding"], "pkcs7");
    assert!(
        attested["signature"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
}

#[tokio::test]
async fn imds_serves_on_a_listener_bound_beforehand() {
    let mut state = world();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    state
        .assign(&podid_azure_emulator::Target::Vm("vm1".into()), "id-c")
        .unwrap();
    let config = EmulatorConfig {
        state,
        imds: vec![("vm1".into(), Listen::Std(listener))],
        aad: None,
        limits: ImdsLimits::unlimited(),
        ..EmulatorConfig::loopback(podid_azure_emulator::AzureState::default())
    };
    let e = Emulator::start(config).await.unwrap();
    assert_eq!(e.imds_addr("vm1"), Some(addr));
    assert_eq!(e.read(|s| s.vm("vm1").unwrap().imds_addr), Some(addr));
    let r = imds_token(addr, "").await;
    assert_eq!(r.json()["client_id"], client_id(&e, "id-c"));
    e.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn an_imds_for_an_unknown_vm_does_not_start() {
    let config = EmulatorConfig {
        state: world(),
        imds: vec![("nope".into(), Listen::Addr("127.0.0.1:0".parse().unwrap()))],
        aad: None,
        limits: ImdsLimits::unlimited(),
        ..EmulatorConfig::loopback(podid_azure_emulator::AzureState::default())
    };
    assert!(Emulator::start(config).await.is_err());
}
