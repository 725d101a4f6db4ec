//! §1–§3: which identities a pod gets, `AZURE_CLIENT_ID`, and the status, annotations and label.

use super::*;

fn status_names(status: &InjectionStatus) -> Vec<&str> {
    status.identities.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn one_annotated_identity_sets_azure_client_id_on_every_app_container_and_native_user_init_container()
 {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "annotations": {"podid.io/identity": "storage-reader"}},
    "spec": {
        "initContainers": [{"name": "wait-db", "image": "busybox"}, {"name": "sidecar", "image": "envoy", "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": "app"}, {"name": "worker", "image": "app", "env": [{"name": "A", "value": "1"}]}]
    }});
    for cfg in both_layouts() {
        let out = inject(&pod, &cfg);
        let apps = app_containers(&out.pod);
        assert_eq!(apps.len(), 4);
        for c in apps {
            let user_init =
                ["wait-db", "sidecar"].contains(&c["name"].as_str().unwrap_or_default());
            // In the legacy layout the proxy starts after the init containers: they get no client id.
            let want: Vec<Value> = if user_init && !cfg.native_sidecars {
                vec![]
            } else {
                vec![json!(STORAGE_READER_CLIENT_ID)]
            };
            let have: Vec<Value> = env_values(c, "AZURE_CLIENT_ID")
                .into_iter()
                .cloned()
                .collect();
            assert_eq!(have, want, "{}", c["name"]);
        }
        // Appended after what the container already had.
        let worker = container(&out.pod, "containers", "worker");
        assert_eq!(worker["env"][0], json!({"name": "A", "value": "1"}));
        assert_eq!(worker["env"][1]["name"], "AZURE_CLIENT_ID");
        // podid's own containers do not get it.
        let init = container(&out.pod, "initContainers", "podid-init");
        assert!(env_values(init, "AZURE_CLIENT_ID").is_empty());
    }
}

#[test]
fn first_annotated_identity_is_the_default_and_the_status_keeps_the_written_order() {
    let out = inject(&pod_naming("keyvault-reader,storage-reader"), &native());
    assert_eq!(
        status_names(&out.status),
        ["keyvault-reader", "storage-reader"]
    );
    let app = container(&out.pod, "containers", "app");
    assert_eq!(
        env_values(app, "AZURE_CLIENT_ID"),
        [&json!(KEYVAULT_READER_CLIENT_ID)]
    );
    let args = identity_args(&out.pod);
    assert_eq!(args.len(), 2);
    assert!(
        args[0].starts_with("name=keyvault-reader,type=0,client-id=0b9d7e44"),
        "{args:?}"
    );
    assert!(
        args[1].starts_with("name=storage-reader,type=0,client-id=6f1c3a52"),
        "{args:?}"
    );
    assert!(args[1].contains(",resource-id=/subscriptions/"), "{args:?}");
}

#[test]
fn annotation_names_are_trimmed_and_repeated_names_count_once() {
    let out = inject(
        &pod_naming(" storage-reader , keyvault-reader,,storage-reader, "),
        &native(),
    );
    assert_eq!(
        status_names(&out.status),
        ["storage-reader", "keyvault-reader"]
    );
}

#[test]
fn azure_client_id_already_set_is_not_overridden_and_not_duplicated() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "annotations": {"podid.io/identity": "storage-reader"}},
    "spec": {"containers": [
        {"name": "literal", "image": "a", "env": [{"name": "AZURE_CLIENT_ID", "value": "mine"}]},
        {"name": "from-secret", "image": "a", "env": [{"name": "AZURE_CLIENT_ID",
            "valueFrom": {"secretKeyRef": {"name": "ids", "key": "client"}}}]},
        {"name": "plain", "image": "a"}
    ]}});
    let out = inject(&pod, &native());
    let literal = container(&out.pod, "containers", "literal");
    assert_eq!(env_values(literal, "AZURE_CLIENT_ID"), [&json!("mine")]);
    let from_secret = container(&out.pod, "containers", "from-secret");
    assert_eq!(from_secret["env"], pod["spec"]["containers"][1]["env"]);
    let plain = container(&out.pod, "containers", "plain");
    assert_eq!(
        env_values(plain, "AZURE_CLIENT_ID"),
        [&json!(STORAGE_READER_CLIENT_ID)]
    );
    // The user's init container in the native-sidecar fixture keeps its own value too.
    let out = inject(&fixture(NATIVE_SIDECAR), &native());
    let migrate = container(&out.pod, "initContainers", "migrate");
    assert_eq!(
        env_values(migrate, "AZURE_CLIENT_ID"),
        [&json!("user-chosen-client-id")]
    );
}

#[test]
fn aadpodidbinding_label_binds_the_identity_of_the_matching_binding() {
    let out = inject(&fixture(JOB), &native());
    assert_eq!(status_names(&out.status), ["storage-reader"]);
    let export = container(&out.pod, "containers", "export");
    assert_eq!(
        env_values(export, "AZURE_CLIENT_ID"),
        [&json!(STORAGE_READER_CLIENT_ID)]
    );
}

#[test]
fn annotation_names_come_first_then_bindings_in_binding_name_order_without_duplicates() {
    // Selector "multi" is matched by b-binding → keyvault-reader, a-binding and
    // c-binding → storage-reader.
    let bindings_only = pod_with(json!({"aadpodidbinding": "multi"}), json!({}));
    let out = inject(&bindings_only, &native());
    assert_eq!(
        status_names(&out.status),
        ["storage-reader", "keyvault-reader"]
    );

    let both = pod_with(
        json!({"aadpodidbinding": "multi"}),
        json!({"podid.io/identity": "keyvault-reader"}),
    );
    let out = inject(&both, &native());
    assert_eq!(
        status_names(&out.status),
        ["keyvault-reader", "storage-reader"]
    );
    let app = container(&out.pod, "containers", "app");
    assert_eq!(
        env_values(app, "AZURE_CLIENT_ID"),
        [&json!(KEYVAULT_READER_CLIENT_ID)]
    );
}

#[test]
fn pod_without_identity_is_protected_by_a_proxy_that_serves_no_identity() {
    for text in [BARE, STATEFULSET] {
        let pod = fixture(text);
        for cfg in both_layouts() {
            let out = inject(&pod, &cfg);
            assert!(out.status.identities.is_empty());
            assert!(status_annotation(&out.pod).identities.is_empty());
            assert!(identity_args(&out.pod).is_empty());
            for c in app_containers(&out.pod) {
                assert!(env_values(c, "AZURE_CLIENT_ID").is_empty(), "{c}");
            }
            assert_eq!(out.pod["metadata"]["labels"]["podid.io/injected"], "true");
        }
    }
}

#[test]
fn service_principal_secrets_are_mounted_read_only_into_the_proxy_only() {
    let pod = pod_naming("sp-secret,storage-reader,sp-cert");
    for cfg in both_layouts() {
        let out = inject(&pod, &cfg);
        let volumes = out.pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(
            volumes.as_slice(),
            [
                json!({"name": "podid-xtables-lock", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}),
                json!({"name": "podid-sp-0", "secret": {"secretName": "sp-secret-creds", "defaultMode": 0o444}}),
                json!({"name": "podid-sp-1", "secret": {"secretName": "sp-cert-creds", "defaultMode": 0o444}}),
            ]
        );
        let proxy = ["initContainers", "containers"]
            .into_iter()
            .flat_map(|l| containers(&out.pod, l))
            .find(|c| c["name"] == "podid-proxy")
            .unwrap();
        assert_eq!(
            proxy["volumeMounts"],
            json!([
                {"name": "podid-sp-0", "mountPath": "/var/run/secrets/podid/sp-secret", "readOnly": true},
                {"name": "podid-sp-1", "mountPath": "/var/run/secrets/podid/sp-cert", "readOnly": true},
            ])
        );
        let init = container(&out.pod, "initContainers", "podid-init");
        assert_eq!(
            init["volumeMounts"],
            json!([{"name": "podid-xtables-lock", "mountPath": "/run"}])
        );
        let app = container(&out.pod, "containers", "app");
        assert!(app.get("volumeMounts").is_none(), "{app}");

        let args = identity_args(&out.pod);
        assert_eq!(
            args,
            [
                "name=sp-secret,type=1,client-id=3c2a9e71-5b0d-4f8e-a6c4-91d27e0f5b18,\
                 tenant-id=72f988bf-86f1-41af-91ab-2d7cd011db47,secret-dir=/var/run/secrets/podid/sp-secret",
                "name=storage-reader,type=0,client-id=6f1c3a52-8d2e-4b7a-9c11-2f0e5d4b3a21,\
                 resource-id=/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/storage-reader",
                "name=sp-cert,type=2,client-id=9a41d2c7-0e6b-4d3f-b8a5-5c7e1f2d9b60,\
                 tenant-id=72f988bf-86f1-41af-91ab-2d7cd011db47,authority=https://login.microsoftonline.us/,\
                 secret-dir=/var/run/secrets/podid/sp-cert",
            ]
        );
        // The default is a service principal: apps get its client id.
        assert_eq!(
            env_values(app, "AZURE_CLIENT_ID"),
            [&json!("3c2a9e71-5b0d-4f8e-a6c4-91d27e0f5b18")]
        );
        assert_eq!(
            out.status.volumes,
            ["podid-xtables-lock", "podid-sp-0", "podid-sp-1"]
        );
    }
}

#[test]
fn status_annotation_parses_back_and_records_each_resolved_identity() {
    for cfg in both_layouts() {
        let out = inject(&pod_naming("storage-reader,sp-secret"), &cfg);
        let status = status_annotation(&out.pod);
        assert_eq!(status, out.status);
        assert_eq!(status.version, STATUS_VERSION);
        assert_eq!(status.layout, cfg.layout());
        assert_eq!(
            status.identities,
            [
                StatusIdentity {
                    name: "storage-reader".into(),
                    kind: 0,
                    client_id: STORAGE_READER_CLIENT_ID.into(),
                    resource_id: "/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/storage-reader".into(),
                    credential: String::new(),
                },
                StatusIdentity {
                    name: "sp-secret".into(),
                    kind: 1,
                    client_id: "3c2a9e71-5b0d-4f8e-a6c4-91d27e0f5b18".into(),
                    resource_id: String::new(),
                    credential: String::new(),
                },
            ]
        );
        let (init, regular): (&[&str], &[&str]) = if cfg.native_sidecars {
            (&["podid-init", "podid-proxy"], &[])
        } else {
            (&["podid-init"], &["podid-proxy"])
        };
        assert_eq!(status.init_containers, init);
        assert_eq!(status.containers, regular);
        assert_eq!(status.volumes, ["podid-xtables-lock", "podid-sp-0"]);
    }
}

#[test]
fn status_annotation_uses_the_documented_json_field_names() {
    let out = inject(&pod_naming("storage-reader"), &native());
    let raw: Value = serde_json::from_str(
        out.pod["metadata"]["annotations"]["podid.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(raw["layout"], "native");
    assert_eq!(raw["initContainers"], json!(["podid-init", "podid-proxy"]));
    let id = &raw["identities"][0];
    assert_eq!(id["name"], "storage-reader");
    assert_eq!(id["type"], 0);
    assert_eq!(id["clientID"], STORAGE_READER_CLIENT_ID);
    assert!(
        id["resourceID"]
            .as_str()
            .unwrap()
            .ends_with("/storage-reader")
    );
}

#[test]
fn default_container_annotation_names_the_first_app_container_in_both_layouts() {
    for cfg in both_layouts() {
        let out = inject(&fixture(DEPLOYMENT), &cfg);
        assert_eq!(
            out.pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
            "reporter"
        );
    }
}

#[test]
fn default_container_annotation_already_set_is_kept() {
    // The Istio fixture sets it to "checkout".
    let pod = fixture(ISTIO);
    for cfg in both_layouts() {
        let out = inject(&pod, &cfg);
        assert_eq!(
            out.pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
            "checkout"
        );
        assert!(
            !out.patch_json.contains("default-container"),
            "{}",
            out.patch_json
        );
    }
}

#[test]
fn injected_pods_are_labelled_podid_injected_true() {
    for (name, text) in INJECTED_FIXTURES {
        for cfg in both_layouts() {
            let out = inject(&fixture(text), &cfg);
            assert_eq!(
                out.pod["metadata"]["labels"]["podid.io/injected"], "true",
                "{name}"
            );
        }
    }
}
