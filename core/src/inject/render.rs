//! The containers and volumes podid adds to a pod, rendered as Kubernetes JSON.

use serde_json::{Value, json};

use super::InjectConfig;
use crate::names;
use crate::proxy_config::{self, PROXY_BINARY, ProxyIdentity};
use crate::resolve::ResolvedIdentity;
use crate::status::Layout;

/// Volume mounted at `/run` in `podid-init`, for iptables' lock file on a read-only root.
pub const XTABLES_LOCK_VOLUME: &str = "podid-xtables-lock";

/// Volume of the projected service-account token federated identities exchange.
pub const FEDERATED_TOKEN_VOLUME: &str = "podid-federated-token";

/// Name of the volume holding the Secret of the `i`-th service-principal identity.
pub fn secret_volume_name(i: usize) -> String {
    format!("podid-sp-{i}")
}

/// Everything podid adds, before it is turned into patch operations.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// `podid-init`.
    pub init: Value,
    /// `podid-proxy`.
    pub proxy: Value,
    /// Volumes to add to the pod.
    pub volumes: Vec<Value>,
}

/// Renders the injected containers and volumes for these identities (default first).
pub fn render(resolved: &[ResolvedIdentity], cfg: &InjectConfig) -> Rendered {
    let identities: Vec<ProxyIdentity> =
        resolved.iter().map(ProxyIdentity::from_resolved).collect();
    let mut volumes = vec![
        json!({"name": XTABLES_LOCK_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}),
    ];
    let mut mounts = Vec::new();
    let service_principals = resolved
        .iter()
        .zip(&identities)
        .filter(|(_, id)| id.kind.is_service_principal() && !id.is_federated());
    if identities.iter().any(ProxyIdentity::is_federated) {
        // The pod's service-account token for Entra ID, as azure-workload-identity
        // projects it, mounted into the proxy only; readable by its uid without an fsGroup.
        volumes.push(json!({"name": FEDERATED_TOKEN_VOLUME, "projected": {
            "defaultMode": 0o444,
            "sources": [{"serviceAccountToken": {
                "path": "token",
                "audience": names::FEDERATED_TOKEN_AUDIENCE,
                "expirationSeconds": names::FEDERATED_TOKEN_EXPIRATION_SECS,
            }}],
        }}));
        mounts.push(json!({"name": FEDERATED_TOKEN_VOLUME, "mountPath": names::FEDERATED_TOKEN_DIR, "readOnly": true}));
    }
    for (i, (r, id)) in service_principals.enumerate() {
        let volume = secret_volume_name(i);
        let secret = r
            .identity
            .spec
            .client_password
            .as_ref()
            .map(|s| s.name.as_str())
            .unwrap_or_default();
        // Mounted into the proxy only. The files belong to root and the proxy runs as 1501
        // without an fsGroup (which would touch the app's volumes), so they must be world-readable.
        volumes
            .push(json!({"name": volume, "secret": {"secretName": secret, "defaultMode": 0o444}}));
        mounts.push(json!({"name": volume, "mountPath": id.secret_dir, "readOnly": true}));
    }
    Rendered {
        init: init_container(&identities, cfg),
        proxy: proxy_container(&identities, mounts, cfg),
        volumes,
    }
}

fn init_container(identities: &[ProxyIdentity], cfg: &InjectConfig) -> Value {
    let mut c = json!({
        "name": names::INIT_CONTAINER,
        "image": cfg.image,
        "command": [PROXY_BINARY],
        "args": proxy_config::init_args(identities),
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "privileged": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": cfg.init_resources,
        "volumeMounts": [{"name": XTABLES_LOCK_VOLUME, "mountPath": "/run"}],
    });
    set_pull_policy(&mut c, cfg);
    c
}

fn proxy_container(identities: &[ProxyIdentity], mounts: Vec<Value>, cfg: &InjectConfig) -> Value {
    let probe = |path: &str, failure_threshold: u32| {
        json!({
            "httpGet": {"path": path, "port": names::PROXY_ADMIN_PORT},
            "periodSeconds": 1,
            "failureThreshold": failure_threshold,
        })
    };
    // The probe outlasts the proxy's own ready timeout, so the proxy gives up first and the pod starts.
    let startup_threshold = cfg.proxy.ready_timeout_secs.saturating_add(30);
    let mut c = json!({
        "name": names::PROXY_CONTAINER,
        "image": cfg.image,
        "command": [PROXY_BINARY],
        "args": proxy_config::proxy_args(identities, &cfg.proxy),
        "ports": [{"name": "podid-admin", "containerPort": names::PROXY_ADMIN_PORT, "protocol": "TCP"}],
        // `apiVersion` spelled out: the API server defaults it after the patch, and a
        // reinvocation compares the container with this rendering.
        "env": [
            {"name": "PODID_POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "PODID_POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
        ],
        "startupProbe": probe("/ready", startup_threshold),
        "livenessProbe": json!({
            "httpGet": {"path": "/live", "port": names::PROXY_ADMIN_PORT},
            "periodSeconds": 10,
            "failureThreshold": 3,
        }),
        "securityContext": {
            "runAsUser": names::PROXY_UID,
            "runAsGroup": names::PROXY_UID,
            "runAsNonRoot": true,
            "privileged": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": cfg.proxy_resources,
    });
    if !mounts.is_empty() {
        c["volumeMounts"] = Value::Array(mounts);
    }
    match cfg.layout() {
        Layout::Native => c["restartPolicy"] = json!("Always"),
        Layout::Legacy => {
            c["lifecycle"] = json!({"postStart": {"exec": {"command": [
                PROXY_BINARY, "wait-ready",
                format!("--url=http://127.0.0.1:{}/ready", names::PROXY_ADMIN_PORT),
                format!("--timeout={}s", startup_threshold),
            ]}}});
        }
    }
    set_pull_policy(&mut c, cfg);
    c
}

fn set_pull_policy(c: &mut Value, cfg: &InjectConfig) {
    if let Some(policy) = &cfg.image_pull_policy {
        c["imagePullPolicy"] = json!(policy);
    }
}
