//! §3 "Denied": each message names the pod (or its generateName) and the cause.

use super::*;

/// Requires a denial for `reason` whose message names the pod `web` and contains `cause`.
fn assert_denied(pod: &Value, cfg: &InjectConfig, reason: DenyReason, cause: &str) {
    let (got, message) = deny(pod, cfg);
    assert_eq!(got, reason, "{message}");
    assert!(message.starts_with(r#"pod "apps/web": "#), "{message}");
    assert!(message.contains(cause), "{cause:?} in {message}");
}

#[test]
fn unknown_identity_in_the_annotation_is_denied_naming_identity_and_namespace() {
    let pod = pod_naming("storage-reader,blob-writer");
    assert_denied(
        &pod,
        &native(),
        DenyReason::Unresolved,
        r#"AzureIdentity "blob-writer" not found in namespace "apps""#,
    );
}

#[test]
fn identity_of_another_namespace_does_not_resolve() {
    assert_denied(
        &pod_naming("other-reader"),
        &native(),
        DenyReason::Unresolved,
        r#"AzureIdentity "other-reader" not found in namespace "apps""#,
    );
}

#[test]
fn denial_of_a_generate_name_pod_names_its_generate_name() {
    let pod = fixture(include_str!(
        "../../../tests/fixtures/pods/deny-unknown-identity.json"
    ));
    let (reason, message) = deny(&pod, &native());
    assert_eq!(reason, DenyReason::Unresolved);
    assert_eq!(
        message,
        r#"pod "apps/uploader-5f6d7c8b9-" (generateName): AzureIdentity "blob-writer" not found in namespace "apps""#
    );
}

#[test]
fn binding_naming_a_missing_identity_is_denied_naming_the_binding() {
    let pod = pod_with(json!({"aadpodidbinding": "dangling"}), json!({}));
    assert_denied(
        &pod,
        &native(),
        DenyReason::Unresolved,
        r#"AzureIdentity "ghost" not found in namespace "apps" (named by AzureIdentityBinding "dangling-binding")"#,
    );
}

#[test]
fn aadpodidbinding_label_that_matches_no_binding_is_denied_naming_the_selector() {
    let pod = pod_with(json!({"aadpodidbinding": "nobody"}), json!({}));
    assert_denied(
        &pod,
        &native(),
        DenyReason::Unresolved,
        r#"no AzureIdentityBinding in namespace "apps" has spec.selector "nobody""#,
    );
}

#[test]
fn unusable_identities_are_denied_naming_the_field_to_fix() {
    for (identity, cause) in [
        ("no-client-id", "(type 0) has no spec.clientID"),
        ("sp-no-tenant", "(type 1) has no spec.tenantID"),
        ("sp-no-secret", "(type 1) has no spec.clientPassword.name"),
        (
            "sp-foreign-secret",
            r#"references Secret "shared-creds" in namespace "kube-system""#,
        ),
    ] {
        let pod = pod_naming(&format!("storage-reader,{identity}"));
        assert_denied(
            &pod,
            &native(),
            DenyReason::Unresolved,
            &format!(r#"AzureIdentity "{identity}" in namespace "apps" {cause}"#),
        );
    }
}

#[test]
fn host_network_pod_with_an_identity_is_denied() {
    let mut pod = pod_naming("storage-reader");
    pod["spec"]["hostNetwork"] = json!(true);
    for cfg in both_layouts() {
        assert_denied(&pod, &cfg, DenyReason::HostNetwork, "hostNetwork");
    }
    let mut bound = pod_with(json!({"aadpodidbinding": "legacy-app"}), json!({}));
    bound["spec"]["hostNetwork"] = json!(true);
    assert_denied(&bound, &native(), DenyReason::HostNetwork, "hostNetwork");
}

#[test]
fn container_running_as_the_proxy_uid_is_denied_naming_the_container() {
    let pod = fixture(include_str!(
        "../../../tests/fixtures/pods/deny-proxy-uid.json"
    ));
    let (reason, message) = deny(&pod, &native());
    assert_eq!(reason, DenyReason::ProxyUid);
    assert!(
        message.starts_with(r#"pod "apps/sneaky": container "app" runs as uid 1501"#),
        "{message}"
    );
}

#[test]
fn init_container_running_as_the_proxy_uid_is_denied() {
    let mut pod = pod_naming("storage-reader");
    pod["spec"]["initContainers"] = json!([
        {"name": "setup", "image": "busybox", "securityContext": {"runAsUser": 1501}}
    ]);
    assert_denied(
        &pod,
        &native(),
        DenyReason::ProxyUid,
        r#"container "setup" runs as uid 1501"#,
    );
}

#[test]
fn pod_level_run_as_user_1501_inherited_by_an_app_container_is_denied() {
    let mut pod = pod_naming("storage-reader");
    pod["spec"]["securityContext"] = json!({"runAsUser": 1501});
    assert_denied(
        &pod,
        &native(),
        DenyReason::ProxyUid,
        r#"container "app" runs as uid 1501"#,
    );
}

#[test]
fn pod_level_run_as_user_1501_overridden_by_every_container_is_injected() {
    let mut pod = pod_naming("storage-reader");
    pod["spec"]["securityContext"] = json!({"runAsUser": 1501});
    pod["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 1000});
    inject(&pod, &native());
}

#[test]
fn proxy_uid_is_denied_even_for_a_pod_without_identity() {
    let mut pod = fixture(BARE);
    pod["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 1501});
    let (reason, message) = deny(&pod, &native());
    assert_eq!(reason, DenyReason::ProxyUid);
    assert!(message.contains(r#"pod "apps/scratch""#), "{message}");
}

#[test]
fn pod_carrying_only_podid_init_is_denied() {
    let mut pod = pod_naming("storage-reader");
    pod["spec"]["initContainers"] = json!([{"name": "podid-init", "image": "busybox"}]);
    for cfg in both_layouts() {
        assert_denied(
            &pod,
            &cfg,
            DenyReason::FakedInjection,
            r#"it carries "podid-init" without the rest of podid's injection"#,
        );
    }
}

#[test]
fn pod_carrying_only_podid_proxy_is_denied_in_either_list() {
    for list in ["initContainers", "containers"] {
        let mut pod = pod_naming("storage-reader");
        let proxy =
            json!({"name": "podid-proxy", "image": "evil", "securityContext": {"runAsUser": 1501}});
        if list == "containers" {
            pod["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(proxy);
        } else {
            pod["spec"]["initContainers"] = json!([proxy]);
        }
        assert_denied(
            &pod,
            &native(),
            DenyReason::FakedInjection,
            r#"it carries "podid-proxy" without the rest"#,
        );
    }
}

#[test]
fn pod_carrying_only_the_status_annotation_is_denied() {
    let injected = inject(&pod_naming("storage-reader"), &native()).pod;
    let status = injected["metadata"]["annotations"]["podid.io/status"].clone();
    let pod = pod_with(
        json!({}),
        json!({"podid.io/identity": "storage-reader", "podid.io/status": status}),
    );
    assert_denied(
        &pod,
        &native(),
        DenyReason::FakedInjection,
        r#"it carries "podid.io/status" without the rest"#,
    );
}

/// An injected pod with one of podid's containers changed by `alter`.
fn altered(cfg: &InjectConfig, name: &str, alter: impl Fn(&mut Value)) -> Value {
    let mut pod = inject(&pod_naming("storage-reader"), cfg).pod;
    for list in ["initContainers", "containers"] {
        let cs = pod["spec"].get_mut(list).and_then(Value::as_array_mut);
        for c in cs.into_iter().flatten() {
            if c["name"] == name {
                alter(c);
            }
        }
    }
    pod
}

#[test]
fn injected_containers_altered_by_the_pods_author_are_denied() {
    type Alter = fn(&mut Value);
    let cases: [(&str, &str, Alter); 7] = [
        ("podid-proxy", "extra lifecycle hook", |c| {
            c["lifecycle"] =
                json!({"preStop": {"exec": {"command": ["sh", "-c", "curl 169.254.169.254"]}}});
        }),
        ("podid-proxy", "other command", |c| {
            c["command"] = json!(["/bin/sh"])
        }),
        ("podid-proxy", "other args", |c| {
            c["args"]
                .as_array_mut()
                .unwrap()
                .push(json!("--identity=name=x,type=0,client-id=y"));
        }),
        ("podid-proxy", "other image", |c| {
            c["image"] = json!("evil.example/proxy:1")
        }),
        ("podid-proxy", "extra volumeMount", |c| {
            c["volumeMounts"] = json!([{"name": "host", "mountPath": "/host"}]);
        }),
        ("podid-init", "other command", |c| {
            c["command"] = json!(["/bin/true"])
        }),
        ("podid-init", "dropped capabilities", |c| {
            c["securityContext"]["capabilities"]["add"] = json!(["NET_RAW"]);
        }),
    ];
    for cfg in both_layouts() {
        for (name, what, alter) in cases {
            let pod = altered(&cfg, name, alter);
            let (reason, message) = deny(&pod, &cfg);
            assert_eq!(
                reason,
                DenyReason::FakedInjection,
                "{name} {what}: {message}"
            );
            assert!(
                message.starts_with(r#"pod "apps/web": "#)
                    && message.contains(&format!(
                        r#"container "{name}" differs from what podid injects"#
                    )),
                "{name} {what}: {message}"
            );
        }
    }
}

#[test]
fn injected_pod_without_podids_volume_is_denied() {
    let mut pod = inject(&pod_naming("sp-secret"), &native()).pod;
    pod["spec"]["volumes"][1]["secret"]["secretName"] = json!("someone-elses-secret");
    assert_denied(
        &pod,
        &native(),
        DenyReason::FakedInjection,
        r#"volume "podid-sp-0" is missing or differs"#,
    );
}

#[test]
fn forged_status_annotation_is_denied() {
    let injected = inject(&pod_naming("storage-reader"), &native()).pod;
    // The author claims an identity the annotation does not name.
    let mut status = status_annotation(&injected);
    status.identities.push(StatusIdentity {
        name: "keyvault-reader".into(),
        kind: 0,
        client_id: KEYVAULT_READER_CLIENT_ID.into(),
        resource_id: String::new(),
        credential: String::new(),
    });
    let mut forged = injected.clone();
    forged["metadata"]["annotations"]["podid.io/status"] =
        json!(serde_json::to_string(&status).unwrap());
    assert_denied(
        &forged,
        &native(),
        DenyReason::FakedInjection,
        r#"annotation "podid.io/status" does not match what podid injects"#,
    );
    let mut garbage = injected;
    garbage["metadata"]["annotations"]["podid.io/status"] = json!("{not json");
    assert_denied(
        &garbage,
        &native(),
        DenyReason::FakedInjection,
        "podid.io/status",
    );
}

#[test]
fn identities_changed_after_injection_are_denied_rather_than_served() {
    // Injected for storage-reader; the annotation now names keyvault-reader.
    let mut pod = inject(&pod_naming("storage-reader"), &native()).pod;
    pod["metadata"]["annotations"]["podid.io/identity"] = json!("keyvault-reader");
    assert_denied(
        &pod,
        &native(),
        DenyReason::FakedInjection,
        "podid.io/status",
    );
}

#[test]
fn faked_proxy_running_other_code_as_uid_1501_is_denied_as_faked_injection() {
    let pod = altered(&native(), "podid-proxy", |c| {
        c["command"] = json!(["sh", "-c", "curl -H Metadata:true 169.254.169.254"]);
    });
    assert_eq!(deny(&pod, &native()).0, DenyReason::FakedInjection);
}

#[test]
fn object_without_containers_is_denied_as_malformed() {
    for object in [
        json!({"metadata": {"name": "web"}}),
        json!({"metadata": {"name": "web"}, "spec": {"containers": []}}),
        json!({"metadata": {"name": "web"}, "spec": "nope"}),
    ] {
        let (reason, message) = deny(&object, &native());
        assert_eq!(reason, DenyReason::Malformed);
        assert!(message.starts_with(r#"pod "apps/web": "#), "{message}");
    }
}

#[test]
fn unnamed_pod_is_named_by_its_namespace_in_denials() {
    let pod = json!({"metadata": {"annotations": {"podid.io/identity": "nope"}},
        "spec": {"containers": [{"name": "app"}]}});
    let (_, message) = deny(&pod, &native());
    assert!(
        message.starts_with(r#"pod (unnamed) in namespace "apps": "#),
        "{message}"
    );
}

#[test]
fn deny_reasons_have_stable_metric_labels() {
    let kinds: Vec<&str> = [
        DenyReason::Malformed,
        DenyReason::Unresolved,
        DenyReason::HostNetwork,
        DenyReason::ProxyUid,
        DenyReason::FakedInjection,
        DenyReason::Strict,
    ]
    .into_iter()
    .map(DenyReason::kind)
    .collect();
    assert_eq!(
        kinds,
        [
            "malformed",
            "unresolved_identity",
            "host_network",
            "proxy_uid",
            "faked_injection",
            "strict"
        ]
    );
}

#[test]
fn pod_using_a_volume_name_podid_injects_is_denied_naming_the_volume() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "annotations": {"podid.io/identity": "storage-reader"}},
        "spec": {"containers": [{"name": "app", "image": "app"}],
                 "volumes": [{"name": "podid-xtables-lock", "emptyDir": {}}]}});
    let decision = plan(
        &PodView::new(&pod, "apps"),
        &index(),
        &InjectConfig::default(),
    );
    let Decision::Deny { reason, message } = decision else {
        panic!("not denied: {decision:?}")
    };
    assert_eq!(reason, DenyReason::ReservedName);
    assert!(message.contains("pod \"apps/web\""), "{message}");
    assert!(
        message.contains("volume \"podid-xtables-lock\" is reserved"),
        "{message}"
    );
}
