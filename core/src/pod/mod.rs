//! What the planner reads of a pod, parsed once into typed views; any shape is tolerated.
//!
//! The planner never trusts its input: a field of the wrong type reads as absent (as
//! `Value::as_str` and friends read it), and a duplicate key in a field podid reads is
//! an error ([`lenient`]). Only the fields the planner decides on are parsed
//! ([`view`]); the patch is made of `add` operations, so nothing else needs to be.

pub mod lenient;
mod view;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use lenient::{Lenient, Strict};
pub use view::{ContainerView, PodObject};

/// Borrowed view of a pod object as received.
#[derive(Clone, Debug)]
pub struct PodView<'a> {
    object: PodObject<'a>,
    namespace: Cow<'a, str>,
    source: Source<'a>,
}

/// Where the whole object can be read again, for the rare comparisons of whole containers.
#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    /// A parsed object.
    Value(&'a Value),
    /// The AdmissionReview body whose `request.object` the view was read from.
    Review(&'a [u8]),
}

/// Which list a container sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerList {
    /// `spec.initContainers`.
    Init,
    /// `spec.containers`.
    Regular,
}

impl ContainerList {
    /// The JSON field name.
    pub fn field(self) -> &'static str {
        match self {
            Self::Init => "initContainers",
            Self::Regular => "containers",
        }
    }
}

/// The part of a review body that [`PodView::full_object`] reads.
#[derive(Deserialize)]
struct FullReview {
    #[serde(default)]
    request: Option<FullRequest>,
}

#[derive(Deserialize)]
struct FullRequest {
    #[serde(default)]
    object: Option<Strict>,
}

// === impl PodView ===

impl<'a> PodView<'a> {
    /// A view of `raw`; `namespace` is the admission request's (a new pod's metadata may lack it).
    pub fn new(raw: &'a Value, namespace: &'a str) -> Self {
        // A `Value` has no duplicate keys, the one thing the views refuse; were it to fail,
        // the empty object is denied as malformed by the planner.
        let Lenient(object) = Lenient::<PodObject<'a>>::deserialize(raw).unwrap_or_default();
        Self {
            object: object.unwrap_or_default(),
            namespace: Cow::Borrowed(namespace),
            source: Source::Value(raw),
        }
    }

    /// The view of `request.object` read from the AdmissionReview `body`.
    pub fn from_review(object: PodObject<'a>, namespace: Cow<'a, str>, body: &'a [u8]) -> Self {
        Self {
            object,
            namespace,
            source: Source::Review(body),
        }
    }

    /// The whole object as received, parsed again (refusing duplicate keys at any depth).
    /// Only the check of an already injected pod needs it.
    pub fn full_object(&self) -> Result<Cow<'a, Value>, String> {
        match self.source {
            Source::Value(v) => Ok(Cow::Borrowed(v)),
            Source::Review(body) => match serde_json::from_slice::<FullReview>(body) {
                Ok(review) => Ok(Cow::Owned(
                    review
                        .request
                        .and_then(|r| r.object)
                        .map(|Strict(v)| v)
                        .unwrap_or_default(),
                )),
                Err(e) => Err(format!("the pod cannot be read unambiguously: {e}")),
            },
        }
    }

    /// The object, when the view was made of a parsed `Value` ([`PodView::new`]); views
    /// read from a review body have none (the planner never needs it).
    pub fn raw(&self) -> Option<&'a Value> {
        match self.source {
            Source::Value(v) => Some(v),
            Source::Review(_) => None,
        }
    }

    /// The namespace the pod is created in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn meta(&self) -> Option<&view::Metadata<'a>> {
        self.object.metadata.0.as_ref()
    }

    fn spec(&self) -> Option<&view::Spec<'a>> {
        self.object.spec.0.as_ref()
    }

    /// `metadata.name`, empty for pods named by `generateName`.
    pub fn name(&self) -> &str {
        self.meta()
            .and_then(|m| m.name.0.as_deref())
            .unwrap_or_default()
    }

    /// `metadata.generateName`.
    pub fn generate_name(&self) -> &str {
        self.meta()
            .and_then(|m| m.generate_name.0.as_deref())
            .unwrap_or_default()
    }

    /// `metadata.namespace`, when it is a string.
    pub fn object_namespace(&self) -> Option<&str> {
        self.meta().and_then(|m| m.namespace.0.as_deref())
    }

    /// Whether `metadata` exists as an object.
    pub fn has_metadata(&self) -> bool {
        self.meta().is_some()
    }

    /// `metadata.labels` (string values only).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.meta_map("labels")
    }

    /// `metadata.annotations` (string values only).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        self.meta_map("annotations")
    }

    /// Whether `metadata.<field>` exists as an object (`labels` or `annotations`).
    pub fn has_meta_map(&self, field: &str) -> bool {
        self.meta().is_some_and(|m| match field {
            "labels" => m.labels.0.is_some(),
            "annotations" => m.annotations.0.is_some(),
            _ => false,
        })
    }

    fn meta_map(&self, field: &str) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        let map = self.meta().and_then(|m| match field {
            "labels" => m.labels.0.as_ref(),
            _ => m.annotations.0.as_ref(),
        });
        map.map_or(&EMPTY, |m| &m.0)
    }

    /// Whether `spec` exists as an object.
    pub fn has_spec(&self) -> bool {
        self.spec().is_some()
    }

    /// `spec.hostNetwork`.
    pub fn host_network(&self) -> bool {
        self.spec().and_then(|s| s.host_network.0).unwrap_or(false)
    }

    /// The containers of one list; empty when absent or not a list.
    pub fn containers(&self, list: ContainerList) -> &[ContainerView<'a>] {
        let list = self.spec().and_then(|s| match list {
            ContainerList::Init => s.init_containers.0.as_deref(),
            ContainerList::Regular => s.containers.0.as_deref(),
        });
        list.unwrap_or_default()
    }

    /// Whether `spec.<list>` exists as a list (`containers`, `initContainers`, `volumes`).
    pub fn has_list(&self, field: &str) -> bool {
        self.spec().is_some_and(|s| match field {
            "containers" => s.containers.0.is_some(),
            "initContainers" => s.init_containers.0.is_some(),
            "volumes" => s.volumes.0.is_some(),
            _ => false,
        })
    }

    /// The names of `spec.volumes` (volumes without a string name are left out).
    pub fn volume_names(&self) -> impl Iterator<Item = &str> {
        let volumes = self.spec().and_then(|s| s.volumes.0.as_deref());
        volumes.unwrap_or_default().iter().filter_map(|v| v.name())
    }

    /// Position and view of the container `name` in `list`.
    pub fn find_container(
        &self,
        list: ContainerList,
        name: &str,
    ) -> Option<(usize, &ContainerView<'a>)> {
        self.containers(list)
            .iter()
            .enumerate()
            .find(|(_, c)| c.name() == name)
    }

    /// The uid a container runs as, when the spec says (container first, then pod).
    pub fn effective_run_as_user(&self, container: &ContainerView<'_>) -> Option<i64> {
        container.run_as_user().or_else(|| {
            self.spec()
                .and_then(|s| s.security_context.0.as_ref())
                .and_then(|sc| sc.run_as_user.0)
        })
    }
}

impl fmt::Display for PodView<'_> {
    /// `pod "ns/name"`, or `pod "ns/prefix-" (generateName)` before the API server names it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.generate_name()) {
            ("", "") => write!(f, "pod (unnamed) in namespace {:?}", self.namespace),
            ("", prefix) => write!(f, "pod \"{}/{prefix}\" (generateName)", self.namespace),
            (name, _) => write!(f, "pod \"{}/{name}\"", self.namespace),
        }
    }
}

#[cfg(test)]
mod tests;
