//! admission.k8s.io/v1 AdmissionReview in and out, around the planner; no HTTP here.
//!
//! Own types rather than kube-core's: its response serializes `patch` as an array of
//! numbers (kube-rs issue 1781) and its request parsing cannot hand back the `uid` of
//! a review that is otherwise malformed.

mod answer;

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::MapAccess;
use serde_json::{Value, json};

use crate::inject::{Decision, InjectConfig, plan};
use crate::model::IdentityIndex;
use crate::pod::lenient::{self, FromJson, Lenient};
use crate::pod::{PodObject, PodView};

/// `apiVersion` of the reviews podid accepts and answers.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// `kind` of a review.
pub const ADMISSION_KIND: &str = "AdmissionReview";

pub use answer::Answer;

/// The fields of `request` the webhook reads, borrowed from the body.
#[derive(Clone, Debug, Deserialize)]
pub struct AdmissionRequest<'a> {
    /// Echoed in the response (read leniently: a uid that is not a string is no uid).
    #[serde(borrow, default)]
    uid: Lenient<Cow<'a, str>>,
    /// The object's group, version and kind.
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// The resource's group, version and name.
    #[serde(default)]
    pub resource: GroupVersionResource,
    /// Set for subresource requests.
    #[serde(borrow, default, rename = "subResource")]
    pub sub_resource: Option<Cow<'a, str>>,
    /// Namespace of the object.
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    #[serde(borrow, default)]
    pub operation: Cow<'a, str>,
    /// The object as it would be stored, as the planner reads it (`None`: not an object).
    #[serde(borrow, default)]
    object: Lenient<PodObject<'a>>,
}

/// `request` read for its `uid` only: the second look at a body the first pass refused.
#[derive(Clone, Debug, Deserialize)]
struct UidOnly<'a> {
    #[serde(borrow, default)]
    uid: Lenient<Cow<'a, str>>,
}

/// The envelope of an AdmissionReview around a `request` read as `R`.
#[derive(Clone, Debug, Deserialize)]
#[serde(bound(deserialize = "'de: 'a, R: FromJson<'de>"))]
struct Envelope<'a, R> {
    #[serde(borrow, default, rename = "apiVersion")]
    api_version: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Lenient<Cow<'a, str>>,
    #[serde(default)]
    request: Lenient<R>,
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
        /// The AdmissionReview to send back.
        review: Answer,
        /// The planner's decision, when a pod was planned.
        decision: Option<Decision>,
        /// Why the request was answered without planning, when it was.
        bypass: Option<&'static str>,
    },
    /// The body was unusable and no uid could be read: answer HTTP 400.
    BadRequest(ReviewError),
}

/// Parses a review body and decides. Never panics, whatever the body.
///
/// The body is parsed once, into views of the fields podid reads ([`crate::pod`]);
/// everything else is skipped. Only a body that pass refuses is looked at again, for
/// the `uid` to answer with.
pub fn review(body: &[u8], index: &IdentityIndex, cfg: &InjectConfig) -> Reviewed {
    let envelope = match serde_json::from_slice::<Lenient<Envelope<AdmissionRequest>>>(body) {
        Ok(Lenient(envelope)) => envelope.unwrap_or_else(Envelope::empty),
        Err(e) if e.is_syntax() || e.is_eof() => {
            return Reviewed::BadRequest(ReviewError::NotJson(e.to_string()));
        }
        Err(e) => return unreadable(body, &e),
    };
    let (uid, request) = match (envelope.uid(), envelope.check_shape()) {
        (None, Err(e)) => return Reviewed::BadRequest(e),
        (None, Ok(())) => return Reviewed::BadRequest(ReviewError::NoUid),
        (Some(uid), Err(e)) => return answer_without_plan(&uid, Err(e.to_string()), "malformed"),
        (Some(uid), Ok(())) => match envelope.request.0 {
            Some(request) => (uid.into_owned(), request),
            None => return Reviewed::BadRequest(ReviewError::NoUid),
        },
    };
    decide(&uid, request, body, index, cfg)
}

/// A body that is JSON but that the views refused (a field of the request of the wrong
/// type, a duplicate key in a field podid reads): the `uid` is read on its own to deny.
fn unreadable(body: &[u8], err: &serde_json::Error) -> Reviewed {
    let not_a_review = |e: &serde_json::Error| ReviewError::NotAReview(e.to_string());
    let envelope = match serde_json::from_slice::<Lenient<Envelope<UidOnly>>>(body) {
        Ok(Lenient(envelope)) => envelope.unwrap_or_else(Envelope::empty),
        Err(e) => return Reviewed::BadRequest(not_a_review(&e)),
    };
    match (envelope.uid(), envelope.check_shape()) {
        (None, Err(e)) => Reviewed::BadRequest(e),
        (None, Ok(())) => Reviewed::BadRequest(ReviewError::NoUid),
        (Some(uid), Err(e)) => answer_without_plan(&uid, Err(e.to_string()), "malformed"),
        (Some(uid), Ok(())) => {
            answer_without_plan(&uid, Err(not_a_review(err).to_string()), "malformed")
        }
    }
}

fn decide(
    uid: &str,
    request: AdmissionRequest<'_>,
    body: &[u8],
    index: &IdentityIndex,
    cfg: &InjectConfig,
) -> Reviewed {
    if request.operation != "CREATE"
        || request
            .sub_resource
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        // Only pod creation is registered; anything else is let through untouched rather than broken.
        return answer_without_plan(uid, Ok(()), "not_create");
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
            uid,
            Err(format!("podid mutates Pods only; got {what:?}")),
            "not_a_pod",
        );
    }
    let object = request.object.0.unwrap_or_default();
    let namespace = request
        .namespace
        .filter(|n| !n.is_empty())
        .or_else(|| object.namespace())
        .unwrap_or(Cow::Borrowed("default"));
    let decision = plan(&PodView::from_review(object, namespace, body), index, cfg);
    let review = response_for(uid, &decision);
    Reviewed::Answer {
        review,
        decision: Some(decision),
        bypass: None,
    }
}

// === impl Envelope ===

impl<'a, R: HasUid<'a>> Envelope<'a, R> {
    /// What a body that is not a JSON object reads as.
    fn empty() -> Self {
        Self {
            api_version: Lenient(None),
            kind: Lenient(None),
            request: Lenient(None),
        }
    }

    /// `request.uid`, when a non-empty string.
    fn uid(&self) -> Option<Cow<'a, str>> {
        self.request
            .0
            .as_ref()
            .and_then(HasUid::uid)
            .filter(|u| !u.is_empty())
    }

    fn check_shape(&self) -> Result<(), ReviewError> {
        let api_version = self.api_version.0.as_deref().unwrap_or_default();
        let kind = self.kind.0.as_deref().unwrap_or_default();
        if kind != ADMISSION_KIND || api_version != ADMISSION_API_VERSION {
            return Err(ReviewError::NotAReview(format!(
                "apiVersion {api_version:?} kind {kind:?}; expected {ADMISSION_API_VERSION:?} {ADMISSION_KIND:?}"
            )));
        }
        if self.request.0.is_none() {
            return Err(ReviewError::NotAReview("no request object".into()));
        }
        Ok(())
    }
}

/// The two readings of `request` both carry the uid.
trait HasUid<'a> {
    fn uid(&self) -> Option<Cow<'a, str>>;
}

impl<'a> HasUid<'a> for AdmissionRequest<'a> {
    fn uid(&self) -> Option<Cow<'a, str>> {
        self.uid.0.clone()
    }
}

impl<'a> HasUid<'a> for UidOnly<'a> {
    fn uid(&self) -> Option<Cow<'a, str>> {
        self.uid.0.clone()
    }
}

impl<'de: 'a, 'a> FromJson<'de> for AdmissionRequest<'a> {
    fn from_object<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        lenient::object(map)
    }
}

impl<'de: 'a, 'a> FromJson<'de> for UidOnly<'a> {
    fn from_object<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        lenient::object(map)
    }
}

impl<'de: 'a, 'a, R: FromJson<'de>> FromJson<'de> for Envelope<'a, R> {
    fn from_object<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        lenient::object(map)
    }
}

fn answer_without_plan(uid: &str, outcome: Result<(), String>, bypass: &'static str) -> Reviewed {
    let review = match outcome {
        Ok(()) => Answer::allowed(uid),
        Err(message) => Answer::denied(uid, &message),
    };
    Reviewed::Answer {
        review,
        decision: None,
        bypass: Some(bypass),
    }
}

/// The AdmissionReview answering `uid` with `decision`.
pub fn response_for(uid: &str, decision: &Decision) -> Answer {
    Answer::for_decision(uid, decision)
}

/// The JSON error body of an HTTP 400.
pub fn error_body(err: &ReviewError) -> Value {
    json!({"error": err.kind(), "message": err.to_string()})
}
