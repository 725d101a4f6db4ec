//! §3 "Idempotent": a pod podid already injected is left as it is, also after the API
//! server has defaulted it and re-run its own admission plugins (reinvocation).

use super::*;

fn set_missing(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        map.entry(key).or_insert(value);
    }
}

/// What the API server's defaulting and LimitRanger do to every container after a webhook's
/// patch (`pkg/apis/core/v1/defaults.go`), before any reinvocation.
fn api_server_defaults(pod: &mut Value) {
    for list in ["initContainers", "containers"] {
        let cs = pod["spec"].get_mut(list).and_then(Value::as_array_mut);
        for c in cs.into_iter().flatten() {
            set_missing(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_missing(c, "terminationMessagePolicy", json!("File"));
            set_missing(c, "imagePullPolicy", json!("IfNotPresent"));
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                if let Some(p) = c.get_mut(probe) {
                    set_missing(p, "timeoutSeconds", json!(1));
                    set_missing(p, "successThreshold", json!(1));
                    set_missing(&mut p["httpGet"], "scheme", json!("HTTP"));
                }
            }
            let ports = c.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten() {
                set_missing(port, "protocol", json!("TCP"));
            }
            let env = c.get_mut("env").and_then(Value::as_array_mut);
            for e in env.into_iter().flatten() {
                if let Some(field_ref) = e.pointer_mut("/valueFrom/fieldRef") {
                    set_missing(field_ref, "apiVersion", json!("v1"));
                }
            }
            // LimitRanger: a namespace default CPU limit and ephemeral-storage request.
            if let Some(resources) = c.get_mut("resources") {
                set_missing(resources, "limits", json!({}));
                set_missing(&mut resources["limits"], "cpu", json!("500m"));
                set_missing(resources, "requests", json!({}));
                set_missing(
                    &mut resources["requests"],
                    "ephemeral-storage",
                    json!("50Mi"),
                );
            }
            // In-place resize: regular containers with requests get a resize policy.
            if list == "containers" && c.pointer("/resources/requests").is_some() {
                set_missing(
                    c,
                    "resizePolicy",
                    json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                           {"resourceName": "memory", "restartPolicy": "NotRequired"}]),
                );
            }
        }
    }
}

/// What the ServiceAccount admission plugin does when it runs again on reinvocation: it
/// mounts the API token into every container that lacks it, podid's included.
fn service_account_mounts(pod: &mut Value) {
    let volume = "kube-api-access-r4nd0";
    let mount = json!({"name": volume, "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
    for list in ["initContainers", "containers"] {
        let cs = pod["spec"].get_mut(list).and_then(Value::as_array_mut);
        for c in cs.into_iter().flatten() {
            let mounts = c
                .as_object_mut()
                .unwrap()
                .entry("volumeMounts")
                .or_insert(json!([]));
            let has = mounts
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == mount["mountPath"]);
            if !has {
                mounts.as_array_mut().unwrap().push(mount.clone());
            }
        }
    }
    let volumes = pod["spec"]["volumes"].as_array_mut().unwrap();
    if !volumes.iter().any(|v| v["name"] == volume) {
        volumes.push(json!({"name": volume, "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}], "defaultMode": 420}}));
    }
}

#[test]
fn injected_pod_planned_again_is_already_injected_in_both_layouts() {
    let mut pods: Vec<(&str, Value)> = INJECTED_FIXTURES
        .iter()
        .map(|(name, text)| (*name, fixture(text)))
        .collect();
    pods.push((
        "service principals",
        pod_naming("sp-secret,sp-cert,storage-reader"),
    ));
    for (name, pod) in pods {
        for cfg in both_layouts() {
            let out = inject(&pod, &cfg);
            let (reason, warnings) = skip(&out.pod, &cfg);
            assert_eq!(reason, SkipReason::AlreadyInjected, "{name}");
            assert_eq!(warnings, out.warnings, "{name}: same warnings again");
        }
    }
}

#[test]
fn api_server_defaults_on_injected_containers_still_count_as_already_injected() {
    for (name, text) in INJECTED_FIXTURES {
        for cfg in both_layouts() {
            let mut pod = inject(&fixture(text), &cfg).pod;
            api_server_defaults(&mut pod);
            assert_eq!(
                skip(&pod, &cfg).0,
                SkipReason::AlreadyInjected,
                "{name} ({:?})",
                cfg.layout()
            );
        }
    }
}

#[test]
fn service_account_token_mounted_into_podids_containers_on_reinvocation_still_counts_as_already_injected()
 {
    for pod in [fixture(DEPLOYMENT), pod_naming("sp-secret")] {
        for cfg in both_layouts() {
            let mut pod = inject(&pod, &cfg).pod;
            service_account_mounts(&mut pod);
            api_server_defaults(&mut pod);
            assert_eq!(skip(&pod, &cfg).0, SkipReason::AlreadyInjected);
        }
    }
}

#[test]
fn changes_by_later_webhooks_to_the_apps_containers_do_not_matter_on_reinvocation() {
    for cfg in both_layouts() {
        let mut pod = inject(&fixture(DEPLOYMENT), &cfg).pod;
        pod["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-status"] =
            json!("injected");
        let reporter = pod["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["name"] == "reporter")
            .unwrap();
        reporter["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "HTTPS_PROXY", "value": "http://proxy:3128"}));
        pod["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "vault-agent", "image": "hashicorp/vault:1.18"}));
        assert_eq!(skip(&pod, &cfg).0, SkipReason::AlreadyInjected);
    }
}

#[test]
fn pod_injected_in_one_layout_is_denied_when_planned_in_the_other() {
    // The proxy is not where this configuration puts it: not podid's current rendering.
    let injected_native = inject(&fixture(DEPLOYMENT), &native()).pod;
    let (reason, message) = deny(&injected_native, &legacy());
    assert_eq!(reason, DenyReason::FakedInjection);
    assert!(
        message.contains("podid.io/status") || message.contains("spec.containers"),
        "{message}"
    );
}
