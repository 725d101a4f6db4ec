//! The views on raw review bodies: escapes, duplicate keys and wrong types, as an attacker writes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use crate::admission::{Reviewed, review};
use crate::inject::{Decision, DenyReason, InjectConfig, SkipReason};
use crate::model::IdentityIndex;
use crate::objects::parse_identities_yaml;

fn index() -> IdentityIndex {
    parse_identities_yaml(include_str!("../../../examples/identities.yaml"), "apps").unwrap()
}

/// A CREATE review whose `request.object` is the raw JSON text `object`.
fn body(object: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u-1",
        "kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},
        "namespace":"apps","operation":"CREATE","object":{object}}}}}"#
    )
    .into_bytes()
}

/// A pod naming `storage-reader` with the raw JSON text `containers` as `spec.containers`.
fn pod(containers: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"web","annotations":{{"podid.io/identity":"storage-reader"}}}},
        "spec":{{"containers":{containers}}}}}"#
    )
}

fn answer(object: &str) -> (Value, Option<Decision>) {
    match review(&body(object), &index(), &InjectConfig::default()) {
        Reviewed::Answer {
            review, decision, ..
        } => (review.to_value(), decision),
        Reviewed::BadRequest(e) => panic!("bad request: {e}"),
    }
}

fn denial(object: &str) -> String {
    let (review, _) = answer(object);
    assert_eq!(review["response"]["uid"], "u-1", "{review}");
    assert_eq!(review["response"]["allowed"], false, "{review}");
    review["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn duplicate_security_context_is_denied_not_read_as_the_last_one() {
    // serde would keep the last (no runAsUser); Go's decoder merges both into uid 1501.
    let message = denial(&pod(
        r#"[{"name":"app","securityContext":{"runAsUser":1501},"securityContext":{}}]"#,
    ));
    assert!(
        message.contains("duplicate field `securityContext`"),
        "{message}"
    );
}

#[test]
fn duplicate_keys_in_every_read_field_are_denied() {
    for object in [
        pod(r#"[{"name":"app","name":"podid-proxy"}]"#),
        pod(r#"[{"name":"app","securityContext":{"runAsUser":1000,"runAsUser":1501}}]"#),
        pod(r#"[{"name":"app","env":[{"name":"A","name":"AZURE_CLIENT_ID"}]}]"#),
        pod(r#"[{"name":"app","securityContext":{"capabilities":{"add":[],"add":["NET_ADMIN"]}}}]"#),
        r#"{"metadata":{"name":"web","labels":{"podid.io/inject":"disabled","podid.io/inject":"x"}},
            "spec":{"containers":[{"name":"app"}]}}"#
            .to_owned(),
        r#"{"metadata":{"name":"web"},"metadata":{"name":"other"},"spec":{"containers":[{"name":"app"}]}}"#
            .to_owned(),
        r#"{"metadata":{"name":"web"},"spec":{"hostNetwork":false,"hostNetwork":true,"containers":[{"name":"app"}]}}"#
            .to_owned(),
    ] {
        let message = denial(&object);
        assert!(message.contains("duplicate"), "{object}: {message}");
    }
}

#[test]
fn duplicate_keys_in_fields_podid_does_not_read_change_nothing() {
    let (review, decision) = answer(&pod(r#"[{"name":"app","command":["a"],"command":["b"]}]"#));
    assert!(
        matches!(decision, Some(Decision::Inject { .. })),
        "{review}"
    );
}

#[test]
fn escaped_keys_and_values_are_read_as_the_api_server_reads_them() {
    // `\u0041` is `A`: Go decodes it in keys and values alike, so must podid.
    let object = pod(r#"[{"n\u0061me":"\u0061pp","securityContext":{"run\u0041sUser":1501}}]"#);
    let (_, decision) = answer(&object);
    match decision {
        Some(Decision::Deny { reason, message }) => {
            assert_eq!(reason, DenyReason::ProxyUid);
            assert!(message.contains(r#"container "app""#), "{message}");
        }
        other => panic!("expected the proxy uid denied, got {other:?}"),
    }
}

#[test]
fn fields_of_the_wrong_type_read_as_absent() {
    // As the Value-based planner read them: `as_bool`, `as_i64`, `as_str` of another type is none.
    let object = r#"{"metadata":{"name":"web","labels":{"podid.io/inject":false},
        "annotations":{"podid.io/identity":"storage-reader","other":["x"]}},
        "spec":{"hostNetwork":"true","securityContext":{"runAsUser":"1501"},
        "containers":[{"name":"app","securityContext":{"runAsUser":1501.0,"privileged":"yes"}},7]}}"#;
    let (review, decision) = answer(object);
    let Some(Decision::Inject { patch, .. }) = decision else {
        panic!("expected Inject: {review}");
    };
    let ops = serde_json::to_value(&patch).unwrap();
    // Index 1 (the `7`) keeps its place: env is added at /spec/containers/1/env.
    let paths: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|op| op["path"].as_str())
        .collect();
    assert!(paths.contains(&"/spec/containers/1/env"), "{paths:?}");
}

#[test]
fn reinvoked_pod_with_a_duplicate_key_in_podids_proxy_is_denied() {
    // Planned once, the patched pod comes back with a second `lifecycle` in podid-proxy:
    // serde would keep the harmless last one; Go merges in the attacker's preStop.
    let cfg = InjectConfig {
        native_sidecars: false,
        ..InjectConfig::default()
    };
    let original: Value = serde_json::from_str(&pod(r#"[{"name":"app"}]"#)).unwrap();
    let view = super::PodView::new(&original, "apps");
    let Decision::Inject { patch, .. } = crate::inject::plan(&view, &index(), &cfg) else {
        panic!("not injected");
    };
    let mut patched = original.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    let reinvoked = review(&body(&patched.to_string()), &index(), &cfg);
    assert!(matches!(
        reinvoked,
        Reviewed::Answer {
            decision: Some(Decision::Skip {
                reason: SkipReason::AlreadyInjected,
                ..
            }),
            ..
        }
    ));
    let proxy = &patched["spec"]["containers"][0];
    assert_eq!(proxy["name"], "podid-proxy");
    let hook = json!({"preStop": {"exec": {"command": ["sh", "-c", "curl 169.254.169.254"]}}});
    let text = patched.to_string().replacen(
        r#""lifecycle":"#,
        &format!(r#""lifecycle":{hook},"lifecycle":"#),
        1,
    );
    match review(&body(&text), &index(), &cfg) {
        Reviewed::Answer {
            decision: Some(Decision::Deny { reason, message }),
            ..
        } => {
            assert_eq!(reason, DenyReason::FakedInjection);
            assert!(message.contains("duplicate key \"lifecycle\""), "{message}");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}
