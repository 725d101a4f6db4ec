//! Planner table tests: every row of CONTRACT.md §1–§3.
//!
//! Each test applies the patch with `json_patch` (after a round trip through its JSON
//! text, as the API server receives it) and checks the resulting pod.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod deny;
mod federated;
mod idempotence;
mod identities;
mod layout;
mod patch;
mod skip;
mod warn;

use serde_json::{Value, json};

use super::*;
use crate::objects::parse_identities_yaml;

/// Namespace of every fixture.
const NS: &str = "apps";

const STORAGE_READER_CLIENT_ID: &str = "6f1c3a52-8d2e-4b7a-9c11-2f0e5d4b3a21";
const KEYVAULT_READER_CLIENT_ID: &str = "0b9d7e44-1a3f-4c58-8e62-7d1f9a0c2b53";

const BARE: &str = include_str!("../../../tests/fixtures/pods/bare.json");
const DEPLOYMENT: &str =
    include_str!("../../../tests/fixtures/pods/deployment-two-identities.json");
const JOB: &str = include_str!("../../../tests/fixtures/pods/job-aadpodidbinding.json");
const STATEFULSET: &str = include_str!("../../../tests/fixtures/pods/statefulset-no-identity.json");
const ISTIO: &str = include_str!("../../../tests/fixtures/pods/istio-injected.json");
const NATIVE_SIDECAR: &str = include_str!("../../../tests/fixtures/pods/native-sidecar.json");
const UNKNOWN_FIELDS: &str = include_str!("../../../tests/fixtures/pods/unknown-fields.json");

/// Every fixture that is injected under the default configuration.
const INJECTED_FIXTURES: [(&str, &str); 7] = [
    ("bare", BARE),
    ("deployment", DEPLOYMENT),
    ("job", JOB),
    ("statefulset", STATEFULSET),
    ("istio", ISTIO),
    ("native-sidecar", NATIVE_SIDECAR),
    ("unknown-fields", UNKNOWN_FIELDS),
];

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The example identities plus the test ones (service principals, broken ones, more bindings).
fn index() -> IdentityIndex {
    let text = format!(
        "{}\n---\n{}",
        include_str!("../../../../examples/identities.yaml"),
        include_str!("../../../tests/fixtures/identities.yaml")
    );
    parse_identities_yaml(&text, NS).unwrap()
}

fn native() -> InjectConfig {
    InjectConfig {
        native_sidecars: true,
        ..InjectConfig::default()
    }
}

fn legacy() -> InjectConfig {
    InjectConfig {
        native_sidecars: false,
        ..InjectConfig::default()
    }
}

fn both_layouts() -> [InjectConfig; 2] {
    [native(), legacy()]
}

/// A named pod in [`NS`] with one container and the given metadata.
fn pod_with(labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": NS, "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/app:1.0"}]}})
}

/// A named pod naming `identities` in its annotation.
fn pod_naming(identities: &str) -> Value {
    pod_with(json!({}), json!({"podid.io/identity": identities}))
}

fn decide(pod: &Value, cfg: &InjectConfig) -> Decision {
    plan(&PodView::new(pod, NS), &index(), cfg)
}

/// The outcome of a pod that must be injected.
#[derive(Debug)]
struct Injected {
    /// The pod after applying the patch.
    pod: Value,
    /// The patch as JSON text.
    patch_json: String,
    status: InjectionStatus,
    warnings: Vec<String>,
}

/// Plans `pod`, requires `Inject`, and applies the patch as the API server would: from its JSON text.
fn inject(pod: &Value, cfg: &InjectConfig) -> Injected {
    match decide(pod, cfg) {
        Decision::Inject {
            patch,
            status,
            warnings,
        } => {
            let patch_json = serde_json::to_string(&patch).unwrap();
            Injected {
                pod: apply(pod, &patch_json),
                patch_json,
                status,
                warnings,
            }
        }
        other => panic!("expected Inject, got {other:?}"),
    }
}

fn apply(pod: &Value, patch_json: &str) -> Value {
    let patch: Patch = serde_json::from_str(patch_json).unwrap();
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

/// Plans `pod` and requires `Deny`; returns the reason and message.
fn deny(pod: &Value, cfg: &InjectConfig) -> (DenyReason, String) {
    match decide(pod, cfg) {
        Decision::Deny { reason, message } => (reason, message),
        other => panic!("expected Deny, got {other:?}"),
    }
}

/// Plans `pod` and requires `Skip`; returns the reason and warnings.
fn skip(pod: &Value, cfg: &InjectConfig) -> (SkipReason, Vec<String>) {
    match decide(pod, cfg) {
        Decision::Skip { reason, warnings } => (reason, warnings),
        other => panic!("expected Skip, got {other:?}"),
    }
}

fn containers<'a>(pod: &'a Value, list: &str) -> &'a [Value] {
    pod["spec"][list]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn container_names<'a>(pod: &'a Value, list: &str) -> Vec<&'a str> {
    containers(pod, list)
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    containers(pod, list)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name:?} in spec.{list}"))
}

/// The `value` of every env entry of the container named `name` (`null` for `valueFrom`).
fn env_values<'a>(c: &'a Value, name: &str) -> Vec<&'a Value> {
    c["env"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["name"] == name)
        .map(|e| &e["value"])
        .collect()
}

/// The user's containers (not podid's) of both lists.
fn app_containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(|list| containers(pod, list))
        .filter(|c| !is_injected(c))
        .collect()
}

/// Whether `c` is one of podid's containers (the planner's own check reads views).
fn is_injected(c: &Value) -> bool {
    super::is_injected(c["name"].as_str().unwrap_or_default())
}

fn status_annotation(pod: &Value) -> InjectionStatus {
    let text = pod["metadata"]["annotations"]["podid.io/status"]
        .as_str()
        .expect("podid.io/status is a string");
    serde_json::from_str(text).unwrap()
}

/// The `--identity=` arguments of the proxy.
fn identity_args(pod: &Value) -> Vec<String> {
    let proxy = ["initContainers", "containers"]
        .into_iter()
        .flat_map(|list| containers(pod, list))
        .find(|c| c["name"] == names::PROXY_CONTAINER)
        .expect("podid-proxy present");
    proxy["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str()?.strip_prefix("--identity="))
        .map(str::to_owned)
        .collect()
}

#[test]
fn example_pod_is_injected_and_second_pass_is_a_no_op() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "reporter", "annotations": {"podid.io/identity": "storage-reader,keyvault-reader"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}});
    let cfg = InjectConfig::default();
    let out = inject(&pod, &cfg);
    assert_eq!(out.status.identities.len(), 2);
    assert_eq!(
        container_names(&out.pod, "initContainers"),
        ["podid-init", "podid-proxy"]
    );
    assert_eq!(
        out.pod["spec"]["containers"][0]["env"][0]["value"],
        STORAGE_READER_CLIENT_ID
    );
    assert_eq!(
        skip(&out.pod, &cfg),
        (SkipReason::AlreadyInjected, Vec::new())
    );
}
