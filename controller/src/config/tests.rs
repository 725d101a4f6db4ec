//! azure.json parsing, endpoint resolution and credential choice.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use super::*;

const AKS_MSI: &str = r#"{
    "cloud": "AzurePublicCloud",
    "tenantId": "t-1",
    "subscriptionId": "s-1",
    "aadClientId": "msi",
    "aadClientSecret": "msi",
    "resourceGroup": "MC_rg_aks_westeurope",
    "location": "westeurope",
    "vmType": "vmss",
    "useManagedIdentityExtension": true,
    "userAssignedIdentityID": "kubelet-client-id",
    "useInstanceMetadata": true
}"#;

fn cfg(text: &str) -> CloudConfig {
    CloudConfig::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_aks_managed_identity_config_reads_all_fields_and_chooses_the_kubelet_identity() {
    let c = cfg(AKS_MSI);
    assert_eq!(c.tenant_id, "t-1");
    assert_eq!(c.subscription_id, "s-1");
    assert_eq!(c.resource_group, "MC_rg_aks_westeurope");
    assert_eq!(c.vm_type, "vmss");
    assert!(c.use_managed_identity_extension);
    let chosen = choose_credential(&WorkloadIdentityFlags::default(), Some(&c));
    assert_eq!(
        chosen.ok(),
        Some(Credential::ManagedIdentity {
            id: Some(ManagedIdentityId::ClientId("kubelet-client-id".into()))
        })
    );
}

#[test]
fn field_names_match_case_insensitively_as_go_reads_them() {
    let c = cfg(r#"{"TENANTID": "t", "aadclientid": "a", "AADClientSecret": "s"}"#);
    assert_eq!((c.tenant_id.as_str(), c.aad_client_id.as_str()), ("t", "a"));
    assert_eq!(c.aad_client_secret, "s");
}

#[test]
fn yaml_cloud_configs_are_read_too() {
    let c = cfg("cloud: AzureChinaCloud\ntenantId: t\nuseManagedIdentityExtension: true\n");
    assert_eq!(c.cloud, "AzureChinaCloud");
    assert!(c.use_managed_identity_extension);
}

#[test]
fn a_non_object_is_refused() {
    assert!(CloudConfig::parse("[1]").is_err());
    assert!(CloudConfig::parse("{").is_err());
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let c = cfg(r#"{"aadClientSecret": "hunter2"}"#);
    assert!(!format!("{c:?}").contains("hunter2"));
    let chosen = choose_credential(
        &WorkloadIdentityFlags::default(),
        Some(&cfg(
            r#"{"aadClientSecret": "hunter2", "aadClientId": "a", "tenantId": "t"}"#,
        )),
    );
    assert!(!format!("{chosen:?}").contains("hunter2"));
}

#[test]
fn workload_identity_flags_win_over_everything() {
    let flags = WorkloadIdentityFlags {
        client_id: Some("wi-client".into()),
        tenant_id: Some("wi-tenant".into()),
        token_file: Some(PathBuf::from(
            "/var/run/secrets/azure/tokens/azure-identity-token",
        )),
    };
    let c = cfg(r#"{"aadClientId": "a", "aadClientSecret": "s", "tenantId": "t"}"#);
    let chosen = choose_credential(&flags, Some(&c)).unwrap();
    assert_eq!(chosen.kind(), "workload_identity");
    assert!(
        matches!(chosen, Credential::WorkloadIdentity { client_id, .. } if client_id == "wi-client")
    );
}

#[test]
fn workload_identity_from_the_cloud_config_takes_its_client_and_tenant() {
    let c = cfg(
        r#"{"useFederatedWorkloadIdentityExtension": true, "aadFederatedTokenFile": "/t",
            "aadClientId": "a", "tenantId": "t"}"#,
    );
    let chosen = choose_credential(&WorkloadIdentityFlags::default(), Some(&c)).unwrap();
    assert_eq!(
        chosen,
        Credential::WorkloadIdentity {
            client_id: "a".into(),
            tenant_id: "t".into(),
            token_file: "/t".into()
        }
    );
}

#[test]
fn workload_identity_without_a_client_id_is_an_error_naming_the_flag() {
    let flags = WorkloadIdentityFlags {
        token_file: Some("/t".into()),
        tenant_id: Some("t".into()),
        ..WorkloadIdentityFlags::default()
    };
    let err = choose_credential(&flags, None).unwrap_err();
    assert!(
        err.to_string().contains("--workload-identity-client-id"),
        "{err}"
    );
}

#[test]
fn a_client_secret_is_used_unless_it_is_msi() {
    let sp = cfg(r#"{"aadClientId": "a", "aadClientSecret": "s", "tenantId": "t"}"#);
    let chosen = choose_credential(&WorkloadIdentityFlags::default(), Some(&sp)).unwrap();
    assert_eq!(chosen.kind(), "client_secret");
    let msi = cfg(r#"{"aadClientId": "msi", "aadClientSecret": "msi", "tenantId": "t"}"#);
    let chosen = choose_credential(&WorkloadIdentityFlags::default(), Some(&msi)).unwrap();
    assert_eq!(chosen, Credential::ManagedIdentity { id: None });
}

#[test]
fn a_client_secret_without_tenant_is_an_error() {
    let sp = cfg(r#"{"aadClientId": "a", "aadClientSecret": "s"}"#);
    assert!(choose_credential(&WorkloadIdentityFlags::default(), Some(&sp)).is_err());
}

#[test]
fn a_user_assigned_identity_given_by_resource_id_is_recognised() {
    let c = cfg(
        r#"{"useManagedIdentityExtension": true, "userAssignedIdentityID": "/subscriptions/s/x"}"#,
    );
    let chosen = choose_credential(&WorkloadIdentityFlags::default(), Some(&c)).unwrap();
    assert_eq!(
        chosen,
        Credential::ManagedIdentity {
            id: Some(ManagedIdentityId::ResourceId("/subscriptions/s/x".into()))
        }
    );
}

#[test]
fn endpoints_follow_the_cloud_and_flags_override_them() {
    let china = cfg(r#"{"cloud": "AzureChinaCloud"}"#);
    let e = resolve_endpoints(&EndpointOverrides::default(), Some(&china)).unwrap();
    assert_eq!(e.arm, "https://management.chinacloudapi.cn");
    assert_eq!(e.authority_host, "https://login.chinacloudapi.cn");
    assert_eq!(e.arm_scope, "https://management.chinacloudapi.cn/.default");
    let flags = EndpointOverrides {
        arm: Some("https://127.0.0.1:8443/".into()),
        authority_host: Some("https://127.0.0.1:8444".into()),
        arm_scope: None,
    };
    let e = resolve_endpoints(&flags, None).unwrap();
    assert_eq!(e.arm, "https://127.0.0.1:8443");
    assert_eq!(e.authority_host, "https://127.0.0.1:8444");
    assert_eq!(
        e.arm_scope, "https://management.azure.com/.default",
        "the public cloud's audience"
    );
}

#[test]
fn an_unknown_cloud_needs_its_endpoints_from_flags() {
    let stack = cfg(r#"{"cloud": "AzureStackCloud"}"#);
    assert!(matches!(
        resolve_endpoints(&EndpointOverrides::default(), Some(&stack)),
        Err(ConfigError::UnknownCloud(_))
    ));
    let flags = EndpointOverrides {
        arm: Some("https://management.local.azurestack.external".into()),
        authority_host: Some("https://login.local".into()),
        arm_scope: None,
    };
    let e = resolve_endpoints(&flags, Some(&stack)).unwrap();
    assert_eq!(
        e.arm_scope,
        "https://management.local.azurestack.external/.default"
    );
}

#[test]
fn a_certificate_service_principal_is_refused_instead_of_silently_using_managed_identity() {
    let c = cfg(
        r#"{"tenantId": "t", "aadClientId": "c", "aadClientCertPath": "/etc/kubernetes/sp.pfx"}"#,
    );
    let err = choose_credential(&WorkloadIdentityFlags::default(), Some(&c)).unwrap_err();
    assert!(
        matches!(err, ConfigError::CertificateUnsupported(ref p) if p == "/etc/kubernetes/sp.pfx"),
        "{err}"
    );
    assert!(err.to_string().contains("aadClientSecret"), "{err}");
}
