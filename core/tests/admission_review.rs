//! `admission::review`: AdmissionReview in, AdmissionReview (or an HTTP 400 error) out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use base64::Engine as _;
use podid_core::admission::{ReviewError, Reviewed, error_body, review};
use podid_core::inject::{Decision, InjectConfig, plan};
use podid_core::model::IdentityIndex;
use podid_core::objects::parse_identities_yaml;
use podid_core::pod::PodView;
use proptest::prelude::*;
use serde_json::{Value, json};

const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

fn index() -> IdentityIndex {
    let text = format!(
        "{}\n---\n{}",
        include_str!("../../examples/identities.yaml"),
        include_str!("fixtures/identities.yaml")
    );
    parse_identities_yaml(&text, "apps").unwrap()
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pods")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A CREATE review of `object` in namespace `apps`, as kube-apiserver sends it.
fn create_review(object: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

fn run(body: &Value) -> (Value, Option<Decision>, Option<&'static str>) {
    match review(
        &serde_json::to_vec(body).unwrap(),
        &index(),
        &InjectConfig::default(),
    ) {
        Reviewed::Answer {
            review,
            decision,
            bypass,
        } => (review.to_value(), decision, bypass),
        Reviewed::BadRequest(e) => panic!("bad request: {e}"),
    }
}

fn bad_request(body: &[u8]) -> ReviewError {
    match review(body, &index(), &InjectConfig::default()) {
        Reviewed::BadRequest(e) => e,
        Reviewed::Answer { review, .. } => panic!("answered: {review}"),
    }
}

/// The decoded JSON Patch of an answer; checks it travels as a base64 string.
fn patch_of(review: &Value) -> Vec<Value> {
    let encoded = review["response"]["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn assert_denied_with_uid(review: &Value, needle: &str) {
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let response = &review["response"];
    assert_eq!(response["uid"], UID);
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{needle:?} in {message}");
    assert!(response.get("patch").is_none());
}

#[test]
fn body_that_is_not_json_is_a_bad_request_with_a_json_error_body() {
    for body in [&b"not json"[..], b"", b"{\"apiVersion\":", b"\xff\xfe"] {
        let err = bad_request(body);
        assert!(matches!(err, ReviewError::NotJson(_)), "{err:?}");
        let error = error_body(&err);
        assert_eq!(error["error"], "not_json");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("request body is not JSON")
        );
    }
}

#[test]
fn json_that_is_not_an_admission_review_is_a_bad_request() {
    for body in [
        json!({"hello": 1}),
        json!([]),
        json!("AdmissionReview"),
        json!(null),
        fixture("bare.json"),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": "x"}),
    ] {
        let err = bad_request(&serde_json::to_vec(&body).unwrap());
        assert!(matches!(err, ReviewError::NotAReview(_)), "{body}: {err:?}");
        assert_eq!(error_body(&err)["error"], "not_a_review");
    }
}

#[test]
fn review_without_a_request_uid_is_a_bad_request() {
    for uid in [None, Some(json!("")), Some(json!(42))] {
        let mut body = create_review(&fixture("bare.json"));
        match uid {
            Some(uid) => body["request"]["uid"] = uid,
            None => {
                body["request"].as_object_mut().unwrap().remove("uid");
            }
        }
        let err = bad_request(&serde_json::to_vec(&body).unwrap());
        assert_eq!(err, ReviewError::NoUid);
        assert_eq!(error_body(&err)["error"], "no_uid");
    }
}

#[test]
fn review_with_a_uid_but_another_api_version_is_denied_echoing_the_uid() {
    let mut body = create_review(&fixture("bare.json"));
    body["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (review, decision, bypass) = run(&body);
    assert_denied_with_uid(&review, "admission.k8s.io/v1beta1");
    assert!(decision.is_none());
    assert_eq!(bypass, Some("malformed"));
}

#[test]
fn review_with_a_uid_and_a_malformed_request_is_denied_echoing_the_uid() {
    let mut body = create_review(&fixture("bare.json"));
    body["request"]["operation"] = json!(7);
    let (review, _, bypass) = run(&body);
    assert_denied_with_uid(&review, "not an admission.k8s.io/v1 AdmissionReview");
    assert_eq!(bypass, Some("malformed"));
}

#[test]
fn non_pod_object_is_denied_echoing_the_uid() {
    let mut body = create_review(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}),
    );
    body["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    body["request"]["resource"] =
        json!({"group": "apps", "version": "v1", "resource": "deployments"});
    let (review, decision, bypass) = run(&body);
    assert_denied_with_uid(
        &review,
        r#"podid mutates Pods only; got "apps/v1 Deployment""#,
    );
    assert!(decision.is_none());
    assert_eq!(bypass, Some("not_a_pod"));
}

#[test]
fn update_delete_connect_and_subresources_are_allowed_without_a_patch() {
    let pod = fixture("deployment-two-identities.json");
    let mut cases = Vec::new();
    for operation in ["UPDATE", "DELETE", "CONNECT"] {
        let mut body = create_review(&pod);
        body["request"]["operation"] = json!(operation);
        if operation == "DELETE" {
            body["request"]["oldObject"] = pod.clone();
            body["request"]["object"] = Value::Null;
        }
        cases.push(body);
    }
    let mut binding = create_review(
        &json!({"apiVersion": "v1", "kind": "Binding", "target": {"name": "node-1"}}),
    );
    binding["request"]["subResource"] = json!("binding");
    cases.push(binding);
    for body in cases {
        let (review, decision, bypass) = run(&body);
        assert_eq!(
            review["response"],
            json!({"uid": UID, "allowed": true}),
            "{}",
            body["request"]["operation"]
        );
        assert!(decision.is_none());
        assert_eq!(bypass, Some("not_create"));
    }
}

#[test]
fn injected_pod_is_answered_with_a_base64_json_patch_of_add_operations() {
    let pod = fixture("deployment-two-identities.json");
    let (review, decision, bypass) = run(&create_review(&pod));
    assert!(
        matches!(decision, Some(Decision::Inject { .. })),
        "{decision:?}"
    );
    assert_eq!(bypass, None);
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let response = &review["response"];
    assert_eq!(response["uid"], UID);
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    assert!(response.get("warnings").is_none());
    let ops = patch_of(&review);
    assert!(!ops.is_empty());
    assert!(ops.iter().all(|op| op["op"] == "add"), "{ops:?}");
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
    let mut patched = pod;
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(patched["spec"]["initContainers"][0]["name"], "podid-init");
    assert_eq!(patched["metadata"]["labels"]["podid.io/injected"], "true");
}

#[test]
fn denied_pod_is_answered_with_403_and_a_message_naming_pod_and_cause() {
    let (review, decision, _) = run(&create_review(&fixture("deny-unknown-identity.json")));
    assert!(matches!(decision, Some(Decision::Deny { .. })));
    assert_denied_with_uid(
        &review,
        r#"pod "apps/uploader-5f6d7c8b9-" (generateName): AzureIdentity "blob-writer" not found in namespace "apps""#,
    );
    assert_eq!(review["response"]["status"]["reason"], "Forbidden");
}

#[test]
fn warnings_are_in_the_response_of_injected_and_skipped_pods() {
    let (review, _, _) = run(&create_review(&fixture("warn-privileged.json")));
    let warnings = review["response"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains(r#"container "netshoot""#)
    );
    assert!(review["response"]["patch"].is_string());

    let (review, _, _) = run(&create_review(&fixture("skip-host-network.json")));
    let response = &review["response"];
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none() && response.get("patchType").is_none());
    assert!(
        response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("hostNetwork")
    );
}

#[test]
fn missing_request_namespace_falls_back_to_the_objects_namespace() {
    let pod = fixture("deployment-two-identities.json");
    for namespace in [None, Some(json!("")), Some(Value::Null)] {
        let mut body = create_review(&pod);
        match namespace {
            Some(ns) => body["request"]["namespace"] = ns,
            None => {
                body["request"].as_object_mut().unwrap().remove("namespace");
            }
        }
        let (_, decision, _) = run(&body);
        assert!(
            matches!(decision, Some(Decision::Inject { .. })),
            "{decision:?}"
        );
    }
    // Neither says: "default", where the identity does not exist.
    let mut body = create_review(&pod);
    body["request"].as_object_mut().unwrap().remove("namespace");
    body["request"]["object"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let (review, _, _) = run(&body);
    assert_denied_with_uid(
        &review,
        r#"AzureIdentity "storage-reader" not found in namespace "default""#,
    );
}

/// Expected decision of each file in `fixtures/pods` (see its README): outcome and warning count.
const FIXTURE_OUTCOMES: &[(&str, &str, usize)] = &[
    ("bare.json", "injected", 0),
    ("deployment-two-identities.json", "injected", 0),
    ("job-aadpodidbinding.json", "injected", 0),
    ("statefulset-no-identity.json", "injected", 0),
    ("istio-injected.json", "injected", 1),
    ("native-sidecar.json", "injected", 0),
    ("unknown-fields.json", "injected", 0),
    ("warn-privileged.json", "injected", 1),
    ("skip-host-network.json", "skipped", 1),
    ("deny-unknown-identity.json", "denied", 0),
    ("deny-proxy-uid.json", "denied", 0),
];

#[test]
fn every_pod_fixture_gets_the_decision_its_readme_documents() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pods");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = FIXTURE_OUTCOMES
        .iter()
        .map(|(f, ..)| (*f).to_owned())
        .collect();
    listed.sort();
    assert_eq!(files, listed, "every fixture has an expected outcome");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for (file, outcome, warnings) in FIXTURE_OUTCOMES {
        assert!(
            readme.contains(&format!("`{file}`")),
            "{file} is in the README"
        );
        let (review, decision, _) = run(&create_review(&fixture(file)));
        let decision = decision.unwrap();
        assert_eq!(decision.outcome(), *outcome, "{file}: {decision:?}");
        let got = review["response"]["warnings"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(got, *warnings, "{file}: {review}");
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_owned()),
                    Just("spec".to_owned()),
                    Just("containers".to_owned()),
                    Just("initContainers".to_owned()),
                    Just("annotations".to_owned()),
                    Just("labels".to_owned()),
                    Just("securityContext".to_owned()),
                    Just("env".to_owned()),
                    Just("name".to_owned()),
                    "[a-z/~]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_object_in_a_review_gets_an_answer_echoing_the_uid(object in arb_json()) {
        let (review, decision, _) = run(&create_review(&object));
        prop_assert_eq!(&review["response"]["uid"], UID);
        prop_assert!(review["response"]["allowed"].is_boolean());
        // The views read from the body decide as the views of the parsed object do.
        let from_value = plan(&PodView::new(&object, "apps"), &index(), &InjectConfig::default());
        prop_assert_eq!(decision, Some(from_value));
    }

    #[test]
    fn arbitrary_bytes_get_an_error_body_or_an_answer(body in prop::collection::vec(any::<u8>(), 0..256)) {
        match review(&body, &index(), &InjectConfig::default()) {
            Reviewed::BadRequest(e) => prop_assert!(error_body(&e)["message"].is_string()),
            Reviewed::Answer { review, .. } => prop_assert!(review.to_value()["response"]["uid"].is_string()),
        }
    }
}
