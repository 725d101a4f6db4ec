//! Planner table tests: every row of CONTRACT.md §1–§3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;
use crate::objects::parse_identities_yaml;

fn index() -> IdentityIndex {
    parse_identities_yaml(include_str!("../../../examples/identities.yaml"), "apps").unwrap()
}

fn apply(pod: &Value, patch: &Patch) -> Value {
    let mut out = pod.clone();
    json_patch::patch(&mut out, patch).unwrap();
    out
}

#[test]
fn example_pod_is_injected_and_second_pass_is_a_no_op() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "reporter", "annotations": {"podid.io/identity": "storage-reader,keyvault-reader"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}});
    let cfg = InjectConfig::default();
    let Decision::Inject { patch, status, .. } = plan(&PodView::new(&pod, "apps"), &index(), &cfg) else {
        panic!("not injected")
    };
    assert_eq!(status.identities.len(), 2);
    let out = apply(&pod, &patch);
    assert_eq!(out["spec"]["initContainers"][0]["name"], "podid-init");
    assert_eq!(out["spec"]["initContainers"][1]["name"], "podid-proxy");
    assert_eq!(out["spec"]["containers"][0]["env"][0]["value"], "6f1c3a52-8d2e-4b7a-9c11-2f0e5d4b3a21");
    let again = plan(&PodView::new(&out, "apps"), &index(), &cfg);
    assert!(matches!(again, Decision::Skip { reason: SkipReason::AlreadyInjected, .. }), "{again:?}");
}
