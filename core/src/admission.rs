//! admission.k8s.io/v1 AdmissionReview in and out, around the planner; no HTTP here.
//!
//! Own types rather than kube-core's: its response serializes `patch` as an array of
//! numbers (kube-rs issue 1781) and its request parsing cannot hand back the `uid` of
//! a review that is otherwise malformed.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::inject::{Decision, InjectConfig, plan};
use crate::model::IdentityIndex;
use crate::pod::PodView;

/// `apiVersion` of the reviews podid accepts and answers.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// `kind` of a review.
pub const ADMISSION_KIND: &str = "AdmissionReview";

/// The fields of `request` the webhook reads.
#[derive(Clone, Debug, Deserialize)]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// The object's group, version and kind.
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// The resource's group, version and name.
    #[serde(default)]
    pub resource: GroupVersionResource,
    /// Set for subresource requests.
    #[serde(default, rename = "subResource")]
    pub sub_resource: Option<String>,
    /// Namespace of the object.
    #[serde(default)]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    #[serde(default)]
    pub operation: String,
    /// The object as it would be stored.
    #[serde(default)]
    pub object: Value,
}

/// `request.kind`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GroupVersionKind {
    /// API group, empty for core.
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// `request.resource`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GroupVersionResource {
    /// API group, empty for core.
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Plural resource name.
    #[serde(default)]
    pub resource: String,
}

/// A body that is not a usable AdmissionReview.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON at all.
    #[error("request body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an admission.k8s.io/v1 AdmissionReview with a request.
    #[error("request body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    NotAReview(String),
    /// A review without `request.uid`.
    #[error("AdmissionReview has no request.uid")]
    NoUid,
}

impl ReviewError {
    /// Bounded label value for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::NotAReview(_) => "not_a_review",
            Self::NoUid => "no_uid",
        }
    }
}

/// What became of a review.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made once per request and consumed at once
pub enum Reviewed {
    /// A review to answer with, and what the planner decided (`None` when it did not run).
    Answer {
        /// The AdmissionReview response JSON.
        review: Value,
        /// The planner's decision, when a pod was planned.
        decision: Option<Decision>,
        /// Why the request was answered without planning, when it was.
        bypass: Option<&'static str>,
    },
    /// The body was unusable and no uid could be read: answer HTTP 400.
    BadRequest(ReviewError),
}

/// Parses a review body and decides. Never panics, whatever the body.
pub fn review(body: &[u8], index: &IdentityIndex, cfg: &InjectConfig) -> Reviewed {
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Reviewed::BadRequest(ReviewError::NotJson(e.to_string())),
    };
    let uid = value
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let shape = check_shape(&value);
    let (uid, request) = match (uid, shape) {
        (None, Err(e)) => return Reviewed::BadRequest(e),
        (None, Ok(())) => return Reviewed::BadRequest(ReviewError::NoUid),
        (Some(uid), Err(e)) => return answer_without_plan(&uid, Err(e.to_string()), "malformed"),
        (Some(uid), Ok(())) => match take_request(&mut value) {
            Ok(r) => (uid, r),
            Err(e) => {
                return answer_without_plan(
                    &uid,
                    Err(ReviewError::NotAReview(e.to_string()).to_string()),
                    "malformed",
                );
            }
        },
    };
    if request.operation != "CREATE"
        || request
            .sub_resource
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        // Only pod creation is registered; anything else is let through untouched rather than broken.
        return answer_without_plan(&uid, Ok(()), "not_create");
    }
    if request.kind.kind != "Pod"
        || !request.kind.group.is_empty()
        || request.resource.resource != "pods"
    {
        let what = format!(
            "{}/{} {}",
            request.kind.group, request.kind.version, request.kind.kind
        );
        return answer_without_plan(
            &uid,
            Err(format!("podid mutates Pods only; got {what:?}")),
            "not_a_pod",
        );
    }
    let namespace = request
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            request
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "default".to_owned());
    let decision = plan(&PodView::new(&request.object, &namespace), index, cfg);
    let review = response_for(&uid, &decision);
    Reviewed::Answer {
        review,
        decision: Some(decision),
        bypass: None,
    }
}

/// Deserializes `request`, moving `request.object` out rather than copying it: the pod is
/// most of the body, and copying it cost as much as parsing the body (bench/, docs/BENCHMARKS.md).
fn take_request(value: &mut Value) -> Result<AdmissionRequest, serde_json::Error> {
    let object = value
        .pointer_mut("/request/object")
        .map(Value::take)
        .unwrap_or_default();
    let mut request = AdmissionRequest::deserialize(&value["request"])?;
    request.object = object;
    Ok(request)
}

fn check_shape(value: &Value) -> Result<(), ReviewError> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != ADMISSION_KIND || api_version != ADMISSION_API_VERSION {
        return Err(ReviewError::NotAReview(format!(
            "apiVersion {api_version:?} kind {kind:?}; expected {ADMISSION_API_VERSION:?} {ADMISSION_KIND:?}"
        )));
    }
    if !value.get("request").is_some_and(Value::is_object) {
        return Err(ReviewError::NotAReview("no request object".into()));
    }
    Ok(())
}

fn answer_without_plan(uid: &str, outcome: Result<(), String>, bypass: &'static str) -> Reviewed {
    let response = match outcome {
        Ok(()) => json!({"uid": uid, "allowed": true}),
        Err(message) => denied(uid, &message),
    };
    Reviewed::Answer {
        review: wrap(response),
        decision: None,
        bypass: Some(bypass),
    }
}

/// The AdmissionReview answering `uid` with `decision`.
pub fn response_for(uid: &str, decision: &Decision) -> Value {
    let response = match decision {
        Decision::Skip { warnings, .. } => {
            with_warnings(json!({"uid": uid, "allowed": true}), warnings)
        }
        Decision::Inject {
            patch, warnings, ..
        } => {
            let bytes = serde_json::to_vec(patch).unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            with_warnings(
                json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": encoded}),
                warnings,
            )
        }
        Decision::Deny { message, .. } => denied(uid, message),
    };
    wrap(response)
}

fn denied(uid: &str, message: &str) -> Value {
    json!({"uid": uid, "allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": message}})
}

fn with_warnings(mut response: Value, warnings: &[String]) -> Value {
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    response
}

fn wrap(response: Value) -> Value {
    json!({"apiVersion": ADMISSION_API_VERSION, "kind": ADMISSION_KIND, "response": response})
}

/// The JSON error body of an HTTP 400.
pub fn error_body(err: &ReviewError) -> Value {
    json!({"error": err.kind(), "message": err.to_string()})
}
