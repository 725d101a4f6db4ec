//! Property: for arbitrary pods, podid's patch only adds, keeps everything of the pod as
//! received, and planning the patched pod again is a no-op — in both layouts.
//!
//! The patch goes through its JSON text and is applied by `json_patch`, an RFC 6902
//! implementation independent of podid's builder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod strategies;

use std::sync::LazyLock;

use podid_core::admission::{self, Reviewed};
use podid_core::inject::{
    Decision, DenyReason, InjectConfig, PodsWithoutIdentity, SkipReason, plan,
};
use podid_core::model::IdentityIndex;
use podid_core::objects::parse_identities_yaml;
use podid_core::pod::PodView;
use proptest::prelude::*;
use serde_json::{Value, json};
use strategies::{Case, arb_case};

const NS: &str = "apps";

static INDEX: LazyLock<IdentityIndex> = LazyLock::new(|| {
    parse_identities_yaml(include_str!("../../../examples/identities.yaml"), NS).unwrap()
});

/// Identities of the example file; `legacy-app` binds storage-reader.
const IDENTITIES: [&str; 2] = ["storage-reader", "keyvault-reader"];

fn client_id(name: &str) -> String {
    INDEX.identity(NS, name).unwrap().spec.client_id.clone()
}

// === the oracle ===

fn list<'a>(pod: &'a Value, field: &str) -> &'a [Value] {
    pod["spec"][field]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The first container (init containers first) that runs as uid 1501, by its own or the pod's setting.
fn proxy_uid_container(pod: &Value) -> Option<String> {
    let pod_uid = pod
        .pointer("/spec/securityContext/runAsUser")
        .and_then(Value::as_i64);
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(|l| list(pod, l))
        .find(|c| {
            c.pointer("/securityContext/runAsUser")
                .and_then(Value::as_i64)
                .or(pod_uid)
                == Some(1501)
        })
        .map(|c| c["name"].as_str().unwrap().to_owned())
}

fn env_has(c: &Value, name: &str) -> bool {
    c["env"]
        .as_array()
        .is_some_and(|env| env.iter().any(|e| e["name"] == name))
}

/// The patched pod with podid's additions taken out, each checked to be what and where it should be.
fn strip_injection(patched: &Value, original: &Value, case: &Case) -> Result<Value, TestCaseError> {
    let mut out = patched.clone();
    let default_id = case.identities.first().map(|n| client_id(n));
    let had = |ptr: &str| original.pointer(ptr).is_some();

    // Positions of podid's containers.
    let inits = list(&out, "initContainers");
    prop_assert_eq!(&inits[0]["name"], "podid-init");
    if case.cfg.native_sidecars {
        prop_assert_eq!(&inits[1]["name"], "podid-proxy");
    } else {
        prop_assert_eq!(&list(&out, "containers")[0]["name"], "podid-proxy");
    }

    for field in ["initContainers", "containers"] {
        let spec = out["spec"].as_object_mut().unwrap();
        let cs = spec.get_mut(field).and_then(Value::as_array_mut).unwrap();
        cs.retain(|c| c["name"] != "podid-init" && c["name"] != "podid-proxy");
        for (c, before) in cs.iter_mut().zip(list(original, field)) {
            prop_assert_eq!(&c["name"], &before["name"]);
            let Some(id) = &default_id else { continue };
            // Legacy layout: user init containers run before the proxy and get no client id.
            let gets_id = field == "containers" || case.cfg.native_sidecars;
            if env_has(before, "AZURE_CLIENT_ID") || !gets_id {
                continue;
            }
            let env = c["env"].as_array_mut().unwrap();
            let last = env.pop().unwrap();
            prop_assert_eq!(last, json!({"name": "AZURE_CLIENT_ID", "value": id}));
            if before.get("env").is_none() {
                prop_assert!(env.is_empty());
                c.as_object_mut().unwrap().remove("env");
            }
        }
        if !had(&format!("/spec/{field}")) && cs.is_empty() {
            spec.remove(field);
        }
    }

    let spec = out["spec"].as_object_mut().unwrap();
    let volumes = spec
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .unwrap();
    let kept = list(original, "volumes").len();
    prop_assert_eq!(&volumes[kept]["name"], "podid-xtables-lock");
    prop_assert_eq!(volumes.len(), kept + 1);
    volumes.truncate(kept);
    if !had("/spec/volumes") {
        spec.remove("volumes");
    }

    let meta = out["metadata"].as_object_mut().unwrap();
    let labels = meta["labels"].as_object_mut().unwrap();
    prop_assert_eq!(labels.remove("podid.io/injected"), Some(json!("true")));
    if !had("/metadata/labels") {
        prop_assert!(labels.is_empty());
        meta.remove("labels");
    }
    let annotations = meta["annotations"].as_object_mut().unwrap();
    prop_assert!(
        annotations
            .remove("podid.io/status")
            .is_some_and(|s| s.is_string())
    );
    let default_container = "/metadata/annotations/kubectl.kubernetes.io~1default-container";
    if original.pointer(default_container).is_none() {
        let first_app = list(original, "containers")[0]["name"].clone();
        let set = annotations.remove("kubectl.kubernetes.io/default-container");
        prop_assert_eq!(set, Some(first_app));
    }
    if !had("/metadata/annotations") {
        prop_assert!(annotations.is_empty());
        meta.remove("annotations");
    }
    Ok(out)
}

/// Plans `pod` from the view of a `Value` and from the bytes of a review carrying it (what
/// the webhook parses); both readings must decide alike.
fn plan_both(pod: &Value, cfg: &InjectConfig) -> Result<Decision, TestCaseError> {
    let decision = plan(&PodView::new(pod, NS), &INDEX, cfg);
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CREATE", "namespace": NS, "object": pod,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}}
    }))
    .unwrap();
    match admission::review(&body, &INDEX, cfg) {
        Reviewed::Answer {
            decision: Some(from_bytes),
            ..
        } => prop_assert_eq!(&from_bytes, &decision),
        _ => return Err(TestCaseError::fail("the review of the pod was not planned")),
    }
    Ok(decision)
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let pod = &case.pod;
    let decision = plan_both(pod, &case.cfg)?;
    if let Some(name) = proxy_uid_container(pod) {
        let Decision::Deny { reason, message } = &decision else {
            return Err(TestCaseError::fail(format!(
                "uid 1501 not denied: {decision:?}"
            )));
        };
        prop_assert_eq!(*reason, DenyReason::ProxyUid);
        prop_assert!(
            message.contains(&format!("container {name:?} runs as uid 1501")),
            "{}",
            message
        );
        return Ok(());
    }
    let risky = if case.identities.is_empty() {
        0
    } else {
        case.init_risks
            .iter()
            .chain(&case.regular_risks)
            .filter(|r| r.risky())
            .count()
    };
    if case.cfg.strict && risky > 0 {
        prop_assert!(
            matches!(
                decision,
                Decision::Deny {
                    reason: DenyReason::Strict,
                    ..
                }
            ),
            "{:?}",
            decision
        );
        return Ok(());
    }
    if case.identities.is_empty() && case.cfg.pods_without_identity == PodsWithoutIdentity::Skip {
        prop_assert_eq!(
            decision,
            Decision::Skip {
                reason: SkipReason::NoIdentity,
                warnings: Vec::new()
            }
        );
        return Ok(());
    }
    let Decision::Inject {
        patch,
        status,
        warnings,
    } = decision
    else {
        return Err(TestCaseError::fail(format!("not injected: {decision:?}")));
    };
    prop_assert_eq!(warnings.len(), risky);
    let names: Vec<&str> = status.identities.iter().map(|i| i.name.as_str()).collect();
    prop_assert_eq!(&names, &case.identities);

    // (b) Only `add`, checked on the JSON text the API server receives.
    let text = serde_json::to_string(&patch).unwrap();
    let ops: Vec<Value> = serde_json::from_str(&text).unwrap();
    prop_assert!(ops.iter().all(|op| op["op"] == "add"), "{}", text);

    let mut patched = pod.clone();
    json_patch::patch(
        &mut patched,
        &serde_json::from_str::<json_patch::Patch>(&text).unwrap(),
    )
    .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}: {text}")))?;

    // (a) Everything of the pod as received is still there, unchanged.
    prop_assert_eq!(&strip_injection(&patched, pod, case)?, pod);

    // (c) Idempotent.
    let again = plan_both(&patched, &case.cfg)?;
    prop_assert_eq!(
        again,
        Decision::Skip {
            reason: SkipReason::AlreadyInjected,
            warnings
        }
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn patch_only_adds_keeps_the_pod_and_is_idempotent(case in arb_case()) {
        check(&case)?;
    }
}
