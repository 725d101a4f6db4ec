//! §3.1–§3.2: where the injected containers go and exactly how they run.

use super::*;
use crate::proxy_config::PROXY_BINARY;

fn proxy(pod: &Value) -> &Value {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(|l| containers(pod, l))
        .find(|c| c["name"] == "podid-proxy")
        .expect("podid-proxy present")
}

#[test]
fn native_layout_puts_init_then_proxy_before_the_users_init_containers() {
    let out = inject(&fixture(NATIVE_SIDECAR), &native());
    assert_eq!(
        container_names(&out.pod, "initContainers"),
        ["podid-init", "podid-proxy", "migrate", "log-shipper"]
    );
    assert_eq!(container_names(&out.pod, "containers"), ["ingest"]);
    let proxy = &out.pod["spec"]["initContainers"][1];
    assert_eq!(proxy["restartPolicy"], "Always");
    assert!(proxy.get("lifecycle").is_none(), "{proxy}");
    assert_eq!(
        proxy["startupProbe"]["httpGet"],
        json!({"path": "/ready", "port": 15392})
    );
    assert_eq!(
        proxy["ports"],
        json!([{"name": "podid-admin", "containerPort": 15392, "protocol": "TCP"}])
    );
    let init = &out.pod["spec"]["initContainers"][0];
    assert!(init.get("restartPolicy").is_none(), "{init}");
}

#[test]
fn legacy_layout_puts_init_first_and_the_proxy_first_among_regular_containers_with_a_post_start_hook()
 {
    let out = inject(&fixture(NATIVE_SIDECAR), &legacy());
    assert_eq!(
        container_names(&out.pod, "initContainers"),
        ["podid-init", "migrate", "log-shipper"]
    );
    assert_eq!(
        container_names(&out.pod, "containers"),
        ["podid-proxy", "ingest"]
    );
    let proxy = &out.pod["spec"]["containers"][0];
    assert!(proxy.get("restartPolicy").is_none(), "{proxy}");
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"],
        json!([
            PROXY_BINARY,
            "wait-ready",
            "--url=http://127.0.0.1:15392/ready",
            "--timeout=90s"
        ])
    );
    assert_eq!(proxy["startupProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(proxy["startupProbe"]["httpGet"]["port"], 15392);
}

#[test]
fn legacy_layout_creates_the_init_container_list_when_the_pod_has_none() {
    let out = inject(&fixture(DEPLOYMENT), &legacy());
    assert_eq!(container_names(&out.pod, "initContainers"), ["podid-init"]);
    assert_eq!(
        container_names(&out.pod, "containers"),
        ["podid-proxy", "reporter", "metrics-exporter"]
    );
}

#[test]
fn init_container_security_context_is_exactly_the_contracts() {
    for cfg in both_layouts() {
        let out = inject(&fixture(STATEFULSET), &cfg);
        let init = &out.pod["spec"]["initContainers"][0];
        assert_eq!(init["name"], "podid-init");
        assert_eq!(
            init["securityContext"],
            json!({
                "runAsUser": 0,
                "runAsGroup": 0,
                "runAsNonRoot": false,
                "privileged": false,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            })
        );
    }
}

#[test]
fn proxy_security_context_pins_uid_and_gid_1501_whatever_the_pod_level_settings() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "annotations": {"podid.io/identity": "storage-reader"}},
    "spec": {
        "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": true, "fsGroup": 2000},
        "containers": [{"name": "app", "image": "app"}]
    }});
    for cfg in both_layouts() {
        let out = inject(&pod, &cfg);
        assert_eq!(
            proxy(&out.pod)["securityContext"],
            json!({
                "runAsUser": 1501,
                "runAsGroup": 1501,
                "runAsNonRoot": true,
                "privileged": false,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            })
        );
        // Pod-level runAsNonRoot would stop the init container; its own setting wins.
        let init = container(&out.pod, "initContainers", "podid-init");
        assert_eq!(init["securityContext"]["runAsNonRoot"], false);
        assert_eq!(init["securityContext"]["runAsUser"], 0);
        // The pod's own settings are untouched.
        assert_eq!(
            out.pod["spec"]["securityContext"],
            pod["spec"]["securityContext"]
        );
    }
}

#[test]
fn injected_containers_state_image_command_and_args_explicitly() {
    let cfg = InjectConfig {
        image: "registry.example/podid/proxy:1.2.3".into(),
        image_pull_policy: Some("Always".into()),
        ..native()
    };
    let out = inject(&pod_naming("storage-reader"), &cfg);
    let init = container(&out.pod, "initContainers", "podid-init");
    let proxy = container(&out.pod, "initContainers", "podid-proxy");
    for c in [init, proxy] {
        assert_eq!(c["image"], "registry.example/podid/proxy:1.2.3");
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["command"], json!([PROXY_BINARY]));
    }
    assert_eq!(
        init["args"],
        json!(["init", "--proxy-uid=1501", "--proxy-port=15391"])
    );
    let args: Vec<&str> = proxy["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args[..4],
        [
            "serve",
            "--listen=127.0.0.1:15391",
            "--admin-listen=0.0.0.0:15392",
            "--ready-timeout=60s"
        ]
    );
    assert!(
        args[4].starts_with("--identity=name=storage-reader,"),
        "{args:?}"
    );
    assert_eq!(args.len(), 5);
}

#[test]
fn image_pull_policy_is_left_to_the_cluster_when_not_configured() {
    let out = inject(&pod_naming("storage-reader"), &native());
    let init = container(&out.pod, "initContainers", "podid-init");
    assert!(init.get("imagePullPolicy").is_none(), "{init}");
}

#[test]
fn blocking_other_imds_paths_is_rendered_into_the_proxy_arguments() {
    let cfg = InjectConfig {
        proxy: crate::proxy_config::ProxySettings {
            ready_timeout_secs: 15,
            block_other_paths: true,
        },
        ..legacy()
    };
    let out = inject(&pod_naming("storage-reader"), &cfg);
    let proxy = proxy(&out.pod);
    let args = proxy["args"].as_array().unwrap();
    assert!(args.contains(&json!("--block-other-paths")), "{args:?}");
    assert!(args.contains(&json!("--ready-timeout=15s")), "{args:?}");
    // The startup probe and the postStart wait outlast the proxy's own timeout.
    assert_eq!(proxy["startupProbe"]["failureThreshold"], 45);
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"][3],
        "--timeout=45s"
    );
}

#[test]
fn job_pod_keeps_restart_policy_never_and_gets_a_native_sidecar_that_does_not_block_completion() {
    let pod = fixture(JOB);
    let out = inject(&pod, &native());
    assert_eq!(out.pod["spec"]["restartPolicy"], "Never");
    assert_eq!(container_names(&out.pod, "containers"), ["export"]);
    assert_eq!(
        container(&out.pod, "initContainers", "podid-proxy")["restartPolicy"],
        "Always"
    );
}
