//! §3 "Rules for the patch": `add` only, parents created where missing, `~1` escaping,
//! and nothing of the pod as received changed.

use serde_json::Map;

use super::*;

/// The patched pod with podid's additions taken out again, checking each is where it belongs.
fn strip_injection(patched: &Value, original: &Value) -> Value {
    let mut out = patched.clone();
    let had = |ptr: &str| original.pointer(ptr).is_some_and(|v| !v.is_null());
    for list in ["initContainers", "containers"] {
        let Some(cs) = out["spec"].get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        cs.retain(|c| !is_injected(c));
        for c in cs.iter_mut() {
            let name = c["name"].as_str().unwrap().to_owned();
            let before = containers(original, list)
                .iter()
                .find(|o| o["name"] == name.as_str())
                .unwrap();
            if env_values(before, "AZURE_CLIENT_ID").is_empty()
                && !env_values(c, "AZURE_CLIENT_ID").is_empty()
            {
                let env = c["env"].as_array_mut().unwrap();
                let last = env.pop().unwrap();
                assert_eq!(last["name"], "AZURE_CLIENT_ID", "appended last in {name}");
                if before.get("env").is_none() {
                    c.as_object_mut().unwrap().remove("env");
                }
            }
        }
        if !had(&format!("/spec/{list}")) && cs.is_empty() {
            out["spec"].as_object_mut().unwrap().remove(list);
        }
    }
    let volumes = out["spec"]["volumes"].as_array_mut().unwrap();
    let kept = containers(original, "volumes").len();
    assert!(
        volumes[kept..]
            .iter()
            .all(|v| v["name"].as_str().unwrap().starts_with("podid-")),
        "podid's volumes are appended"
    );
    volumes.truncate(kept);
    if !had("/spec/volumes") {
        out["spec"].as_object_mut().unwrap().remove("volumes");
    }
    let meta = out["metadata"].as_object_mut().unwrap();
    strip_map(meta, "labels", &["podid.io/injected"], original);
    let mut added = vec!["podid.io/status"];
    if original
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .is_none()
    {
        added.push("kubectl.kubernetes.io/default-container");
    }
    strip_map(meta, "annotations", &added, original);
    if original.get("metadata").is_none() && meta.is_empty() {
        out.as_object_mut().unwrap().remove("metadata");
    }
    out
}

fn strip_map(meta: &mut Map<String, Value>, field: &str, keys: &[&str], original: &Value) {
    let map = meta[field].as_object_mut().unwrap();
    for key in keys {
        assert!(map.remove(*key).is_some(), "{field} {key} was added");
    }
    let existed = original["metadata"]
        .get(field)
        .is_some_and(Value::is_object);
    if !existed && map.is_empty() {
        meta.remove(field);
    }
}

fn ops(patch_json: &str) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(patch_json).unwrap()
}

#[test]
fn every_patch_operation_is_add_for_every_fixture_in_both_layouts() {
    for (name, text) in INJECTED_FIXTURES {
        for cfg in both_layouts() {
            let out = inject(&fixture(text), &cfg);
            let ops = ops(&out.patch_json);
            assert!(!ops.is_empty());
            for op in &ops {
                assert_eq!(op["op"], "add", "{name}: {op}");
            }
        }
    }
}

#[test]
fn apart_from_podids_additions_the_patched_pod_equals_the_pod_as_received() {
    for (name, text) in INJECTED_FIXTURES {
        let pod = fixture(text);
        for cfg in both_layouts() {
            let out = inject(&pod, &cfg);
            assert_eq!(strip_injection(&out.pod, &pod), pod, "{name}");
        }
    }
}

#[test]
fn keys_with_a_slash_are_escaped_as_tilde_1_in_patch_paths() {
    let out = inject(&fixture(DEPLOYMENT), &native());
    let paths: Vec<String> = ops(&out.patch_json)
        .iter()
        .map(|op| op["path"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "/metadata/labels/podid.io~1injected",
        "/metadata/annotations/podid.io~1status",
        "/metadata/annotations/kubectl.kubernetes.io~1default-container",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
    }
    assert!(
        out.patch_json
            .contains(r#""path":"/metadata/annotations/podid.io~1status""#),
        "{}",
        out.patch_json
    );
    assert!(paths.iter().all(|p| !p.contains("podid.io/")), "{paths:?}");
}

#[test]
fn pod_without_labels_annotations_init_containers_volumes_or_env_gets_each_parent_added_whole() {
    let pod = fixture(BARE);
    let out = inject(&pod, &native());
    let ops = ops(&out.patch_json);
    let paths: Vec<&str> = ops.iter().map(|op| op["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/metadata/labels",
            "/metadata/annotations",
            "/metadata/annotations/kubectl.kubernetes.io~1default-container",
            "/spec/initContainers",
            "/spec/volumes",
        ]
    );
    assert_eq!(ops[0]["value"], json!({"podid.io/injected": "true"}));
    assert!(ops[1]["value"]["podid.io/status"].is_string());
    assert_eq!(ops[2]["value"], "shell");
    assert_eq!(ops[3]["value"].as_array().unwrap().len(), 2);
    assert_eq!(ops[4]["value"][0]["name"], "podid-xtables-lock");
    assert_eq!(
        out.pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
        "shell"
    );
}

#[test]
fn env_is_created_where_missing_and_appended_to_where_present() {
    let out = inject(&fixture(DEPLOYMENT), &legacy());
    let ops = ops(&out.patch_json);
    let env_ops: Vec<&Value> = ops
        .iter()
        .filter(|op| op["path"].as_str().unwrap().contains("/env"))
        .collect();
    let entry = json!({"name": "AZURE_CLIENT_ID", "value": STORAGE_READER_CLIENT_ID});
    assert_eq!(
        env_ops,
        [
            &json!({"op": "add", "path": "/spec/containers/0/env/-", "value": entry}),
            &json!({"op": "add", "path": "/spec/containers/1/env", "value": [entry]}),
        ]
    );
    // The indexes are those of the pod as received: podid-proxy, prepended afterwards,
    // carries only its own variables.
    let proxy = container(&out.pod, "containers", "podid-proxy");
    let proxy_env: Vec<&str> = proxy["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(proxy_env, ["PODID_POD_NAME", "PODID_POD_NAMESPACE"]);
}

#[test]
fn pod_without_metadata_gets_metadata_added_before_its_maps() {
    let pod = json!({"spec": {"containers": [{"name": "app", "image": "app"}]}});
    let out = inject(&pod, &native());
    let ops = ops(&out.patch_json);
    assert_eq!(
        ops[0],
        json!({"op": "add", "path": "/metadata", "value": {}})
    );
    assert_eq!(ops[1]["path"], "/metadata/labels");
    assert_eq!(out.pod["metadata"]["labels"]["podid.io/injected"], "true");
    assert_eq!(strip_injection(&out.pod, &pod), pod);
}

#[test]
fn null_labels_and_init_containers_are_treated_as_missing() {
    let pod = json!({"metadata": {"name": "web", "labels": null, "annotations": {"podid.io/identity": "storage-reader"}},
        "spec": {"initContainers": null, "volumes": null,
                 "containers": [{"name": "app", "image": "app", "env": null}]}});
    let out = inject(&pod, &native());
    assert_eq!(
        out.pod["metadata"]["labels"],
        json!({"podid.io/injected": "true"})
    );
    assert_eq!(
        container_names(&out.pod, "initContainers"),
        ["podid-init", "podid-proxy"]
    );
    assert_eq!(
        out.pod["spec"]["containers"][0]["env"],
        json!([{"name": "AZURE_CLIENT_ID", "value": STORAGE_READER_CLIENT_ID}])
    );
}

#[test]
fn users_native_sidecar_keeps_restart_policy_always_and_its_place() {
    for cfg in both_layouts() {
        let pod = fixture(NATIVE_SIDECAR);
        let out = inject(&pod, &cfg);
        let shipper = container(&out.pod, "initContainers", "log-shipper");
        assert_eq!(shipper["restartPolicy"], "Always");
        let names = container_names(&out.pod, "initContainers");
        let tail = &names[names.len() - 2..];
        assert_eq!(tail, ["migrate", "log-shipper"]);
    }
}

#[test]
fn istio_injected_pod_keeps_istio_containers_and_podid_init_runs_before_istio_init() {
    let pod = fixture(ISTIO);
    for cfg in both_layouts() {
        let out = inject(&pod, &cfg);
        let inits = container_names(&out.pod, "initContainers");
        assert_eq!(inits[0], "podid-init");
        assert_eq!(inits.last(), Some(&"istio-init"));
        let regular = container_names(&out.pod, "containers");
        assert!(
            regular.ends_with(&["checkout", "istio-proxy"]),
            "{regular:?}"
        );
        // istio-init is a user init container: with native sidecars it gets AZURE_CLIENT_ID
        // and nothing else; in the legacy layout it is left untouched.
        let mut istio_init = container(&out.pod, "initContainers", "istio-init").clone();
        if cfg.native_sidecars {
            let env = istio_init.as_object_mut().unwrap().remove("env").unwrap();
            assert_eq!(
                env,
                json!([{"name": "AZURE_CLIENT_ID", "value": KEYVAULT_READER_CLIENT_ID}])
            );
        }
        assert_eq!(istio_init, pod["spec"]["initContainers"][0]);
        // istio-proxy is an app container as far as the contract goes.
        assert_eq!(
            env_values(
                container(&out.pod, "containers", "istio-proxy"),
                "AZURE_CLIENT_ID"
            ),
            [&json!(KEYVAULT_READER_CLIENT_ID)]
        );
        assert_eq!(
            out.pod["metadata"]["annotations"]["sidecar.istio.io/status"],
            pod["metadata"]["annotations"]["sidecar.istio.io/status"]
        );
    }
}

#[test]
fn generate_name_pod_is_injected_without_gaining_a_name() {
    let pod = fixture(DEPLOYMENT);
    let out = inject(&pod, &native());
    assert!(out.pod["metadata"].get("name").is_none());
    assert_eq!(out.pod["metadata"]["generateName"], "reporter-7d9f8b6c5-");
    assert_eq!(
        out.pod["metadata"]["ownerReferences"],
        pod["metadata"]["ownerReferences"]
    );
    assert_eq!(
        out.pod["metadata"]["labels"]["pod-template-hash"],
        "7d9f8b6c5"
    );
}

#[test]
fn managed_fields_and_fields_unknown_to_podid_are_untouched() {
    let pod = fixture(UNKNOWN_FIELDS);
    for cfg in both_layouts() {
        let out = inject(&pod, &cfg);
        for ptr in [
            "/futureTopLevel",
            "/metadata/managedFields",
            "/metadata/futureMetadataField",
            "/metadata/creationTimestamp",
            "/metadata/labels/weird~0key~1with~01tilde",
            "/spec/futureSpecField",
            "/spec/resourceClaims",
            "/status",
        ] {
            assert_eq!(out.pod.pointer(ptr), pod.pointer(ptr), "{ptr}");
            assert!(pod.pointer(ptr).is_some(), "fixture has {ptr}");
        }
        let app = container(&out.pod, "containers", "app");
        let before = &pod["spec"]["containers"][0];
        for field in ["futureContainerField", "resources", "restartPolicyRules"] {
            assert_eq!(app[field], before[field], "{field}");
        }
        assert_eq!(
            app["env"][0],
            json!({"name": "MODE", "value": "fast", "futureEnvField": 7})
        );
        let prepare = container(&out.pod, "initContainers", "prepare");
        assert_eq!(prepare["futureInitField"], json!([[], {}]));
        assert!(
            !out.patch_json.contains("managedFields") && !out.patch_json.contains("future"),
            "{}",
            out.patch_json
        );
    }
}
