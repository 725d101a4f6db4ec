//! Shared helpers of the webhook's integration tests: server, clients, fixtures, patch checks.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod server;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use json_patch::{Patch, PatchOperation};
use serde_json::{Value, json};

pub use client::{Conn, Reply};
pub use server::TestServer;

/// How long anything may take on a loaded CI machine before a test gives up.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The realistic reviews under `tests/fixtures/reviews`, all pods the webhook injects.
pub const POD_FIXTURES: [&str; 7] = [
    "deployment-pod",
    "job-pod",
    "statefulset-pod",
    "istio-pod",
    "native-sidecar-pod",
    "future-fields-pod",
    "large-pod",
];

/// `clientID` of `storage-reader` in `examples/identities.yaml`.
pub const STORAGE_READER_CLIENT_ID: &str = "6f1c3a52-8d2e-4b7a-9c11-2f0e5d4b3a21";
/// `clientID` of `keyvault-reader` in `examples/identities.yaml`.
pub const KEYVAULT_READER_CLIENT_ID: &str = "0b9d7e44-1a3f-4c58-8e62-7d1f9a0c2b53";

/// Polls `check` until it yields a value, panicking after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A file under `tests/fixtures`.
pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// The AdmissionReview `tests/fixtures/reviews/<name>.json`.
pub fn review_fixture(name: &str) -> Value {
    let path = fixture_path(&format!("reviews/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// `review` with `request.uid` replaced.
pub fn with_uid(mut review: Value, uid: &str) -> Value {
    review["request"]["uid"] = json!(uid);
    review
}

/// The deployment fixture's envelope around `object`, with `uid`.
pub fn review_of(object: Value, uid: &str) -> Value {
    let mut review = with_uid(review_fixture("deployment-pod"), uid);
    review["request"]["object"] = object;
    review
}

/// Checks a review answer's envelope (200, JSON, apiVersion/kind, uid) and returns `response`.
pub fn response_of(reply: &Reply, uid: &str) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.assert_json_content_type();
    let review = reply.json();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{review}");
    assert_eq!(review["kind"], "AdmissionReview", "{review}");
    assert_eq!(review["response"]["uid"], uid, "{review}");
    review["response"].clone()
}

/// POSTs `review` to `/mutate` and returns its checked `response`.
pub async fn admit(conn: &mut Conn, review: &Value) -> Value {
    let uid = review["request"]["uid"]
        .as_str()
        .expect("fixture has a uid");
    let reply = conn.post_json("/mutate", review).await;
    response_of(&reply, uid)
}

/// Decodes an allowed response's patch: `patchType: JSONPatch`, base64 string, `add` only.
pub fn decode_patch(response: &Value) -> Patch {
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let encoded = response["patch"]
        .as_str()
        .unwrap_or_else(|| panic!("patch is not a base64 string: {}", response["patch"]));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("patch is valid base64");
    let patch: Patch = serde_json::from_slice(&bytes).expect("patch is a JSON Patch");
    for op in patch.iter() {
        assert!(
            matches!(op, PatchOperation::Add(_)),
            "only add operations are allowed: {op:?}"
        );
    }
    patch
}

/// `object` with `patch` applied, as the API server would.
pub fn apply(object: &Value, patch: &Patch) -> Value {
    let mut patched = object.clone();
    json_patch::patch(&mut patched, patch).expect("patch applies to the object as sent");
    patched
}

/// Asserts `patched` still holds everything of `original`, unchanged: object keys with
/// equal values, array elements in order (new elements may be interleaved).
pub fn assert_preserved(original: &Value, patched: &Value) {
    if let Some(path) = first_loss(original, patched, "") {
        panic!("the patch changed or removed {path:?} of the object as received");
    }
}

fn first_loss(original: &Value, patched: &Value, path: &str) -> Option<String> {
    match (original, patched) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(key, value)| {
            let here = format!("{path}/{key}");
            match b.get(key) {
                Some(new) => first_loss(value, new, &here),
                None => Some(here),
            }
        }),
        (Value::Array(a), Value::Array(b)) => {
            let mut rest = b.iter();
            a.iter().enumerate().find_map(|(i, value)| {
                let here = format!("{path}/{i}");
                let found = rest.any(|new| first_loss(value, new, &here).is_none());
                (!found).then_some(here)
            })
        }
        (a, b) => (a != b).then(|| path.to_owned()),
    }
}

/// Names of the containers in `spec.<list>`.
pub fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The container named `name` in `spec.<list>`.
pub fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {list} container {name:?} in {pod}"))
}

/// The value of env var `name` in `container`, if set.
pub fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// Asserts podid's native-sidecar injection is in place in `pod`: `podid-init` then
/// `podid-proxy` (restartPolicy Always) first among init containers, the status
/// annotation and injected label, and `AZURE_CLIENT_ID` = `client_id` in every app container.
pub fn assert_injected_native(pod: &Value, client_id: &str) {
    let init = container_names(pod, "initContainers");
    assert_eq!(init[..2], ["podid-init", "podid-proxy"], "{init:?}");
    assert_eq!(
        container(pod, "initContainers", "podid-proxy")["restartPolicy"],
        "Always"
    );
    let regular = container_names(pod, "containers");
    assert!(
        !regular.iter().any(|n| n.starts_with("podid-")),
        "{regular:?}"
    );
    assert_eq!(pod["metadata"]["labels"]["podid.io/injected"], "true");
    let status = pod["metadata"]["annotations"]["podid.io/status"]
        .as_str()
        .expect("podid.io/status annotation");
    let status: Value = serde_json::from_str(status).expect("status is JSON");
    assert_eq!(status["layout"], "native", "{status}");
    for name in regular {
        let c = container(pod, "containers", &name);
        let have = env_value(c, "AZURE_CLIENT_ID");
        assert_eq!(have, Some(client_id), "AZURE_CLIENT_ID of {name}");
    }
}
