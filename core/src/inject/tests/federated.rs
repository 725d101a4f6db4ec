//! Workload-identity-federated identities (AzureIdentity annotation `podid.io/credential: federated`).

use super::*;

const FED_READER_CLIENT_ID: &str = "9a1b2c3d-0000-4000-8000-00000000fed1";

fn args_of<'a>(pod: &'a Value, name: &str) -> Vec<&'a str> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(|list| containers(pod, list))
        .find(|c| c["name"] == name)
        .and_then(|c| c["args"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn proxy_of(pod: &Value) -> &Value {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(|list| containers(pod, list))
        .find(|c| c["name"] == names::PROXY_CONTAINER)
        .expect("podid-proxy present")
}

#[test]
fn all_federated_pod_gets_the_projected_token_in_the_proxy_only_and_no_imds() {
    for cfg in both_layouts() {
        let out = inject(&pod_naming("fed-reader,fed-app"), &cfg);
        let volume = out.pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == FEDERATED_TOKEN_VOLUME)
            .expect("token volume");
        assert_eq!(
            volume["projected"]["sources"],
            json!([{"serviceAccountToken": {"path": "token",
                "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600}}])
        );
        assert_eq!(volume["projected"]["defaultMode"], 0o444);
        let proxy = proxy_of(&out.pod);
        assert_eq!(
            proxy["volumeMounts"],
            json!([{"name": FEDERATED_TOKEN_VOLUME, "mountPath": "/var/run/secrets/podid-federated", "readOnly": true}])
        );
        for c in app_containers(&out.pod) {
            assert!(c.get("volumeMounts").is_none(), "app got a mount: {c}");
        }
        assert_eq!(
            identity_args(&out.pod),
            [
                format!("name=fed-reader,type=0,client-id={FED_READER_CLIENT_ID},tenant-id=72f988bf-86f1-41af-91ab-2d7cd011db47,token-file=/var/run/secrets/podid-federated/token"),
                "name=fed-app,type=1,client-id=9a1b2c3d-0000-4000-8000-00000000fed2,tenant-id=72f988bf-86f1-41af-91ab-2d7cd011db47,authority=https://login.microsoftonline.us/,token-file=/var/run/secrets/podid-federated/token".to_owned(),
            ]
        );
        // No Secret of the federated app registration is mounted.
        assert!(
            !out.patch_json.contains("fed-app-secret"),
            "{}",
            out.patch_json
        );
        assert!(args_of(&out.pod, names::INIT_CONTAINER).contains(&"--reject-imds"));
        assert!(args_of(&out.pod, names::PROXY_CONTAINER).contains(&"--block-other-paths"));
        assert_eq!(out.status.identities[0].credential, "federated");
        assert_eq!(
            env_values(app_containers(&out.pod)[0], "AZURE_CLIENT_ID"),
            [&json!(FED_READER_CLIENT_ID)]
        );
        assert_eq!(
            skip(&out.pod, &cfg),
            (SkipReason::AlreadyInjected, Vec::new())
        );
    }
}

#[test]
fn a_mixed_pod_keeps_imds_for_its_managed_identity() {
    let out = inject(&pod_naming("fed-reader,storage-reader"), &native());
    assert!(!args_of(&out.pod, names::INIT_CONTAINER).contains(&"--reject-imds"));
    assert!(!args_of(&out.pod, names::PROXY_CONTAINER).contains(&"--block-other-paths"));
    assert!(out.patch_json.contains(FEDERATED_TOKEN_VOLUME));
    assert_eq!(out.status.identities[1].credential, "");
}

#[test]
fn pods_without_federated_identities_get_no_token_volume() {
    for pod in [pod_naming("storage-reader"), pod_naming("")] {
        let out = inject(&pod, &native());
        assert!(!out.patch_json.contains(FEDERATED_TOKEN_VOLUME));
        assert!(!args_of(&out.pod, names::INIT_CONTAINER).contains(&"--reject-imds"));
    }
}

#[test]
fn a_forged_token_mount_into_the_proxy_is_denied_on_reinvocation() {
    let out = inject(&pod_naming("fed-reader"), &native());
    let mut forged = out.pod.clone();
    forged["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|v| v["name"] == FEDERATED_TOKEN_VOLUME)
        .for_each(|v| {
            v["projected"]["sources"][0]["serviceAccountToken"]["audience"] =
                json!("https://kubernetes.default.svc")
        });
    let (reason, message) = deny(&forged, &native());
    assert_eq!(reason, DenyReason::FakedInjection, "{message}");
    assert!(message.contains(FEDERATED_TOKEN_VOLUME), "{message}");
    // Turning the pod back into one that reaches IMDS is not podid's rendering either.
    let mut reopened = out.pod.clone();
    for c in reopened["spec"]["initContainers"].as_array_mut().unwrap() {
        if c["name"] == names::INIT_CONTAINER {
            c["args"]
                .as_array_mut()
                .unwrap()
                .retain(|a| a != "--reject-imds");
        }
    }
    assert_eq!(deny(&reopened, &native()).0, DenyReason::FakedInjection);
}

#[test]
fn federated_identities_that_cannot_be_exchanged_are_denied_naming_the_fix() {
    for (name, needle) in [
        (
            "fed-no-tenant",
            "is federated (podid.io/credential: federated) and has no spec.tenantID",
        ),
        (
            "fed-typo",
            "has annotation podid.io/credential: \"workload-identity\"; the only value is \"federated\"",
        ),
    ] {
        let (reason, message) = deny(&pod_naming(name), &native());
        assert_eq!(reason, DenyReason::Unresolved, "{message}");
        assert!(message.contains(needle), "{name}: {message}");
    }
}
