//! A read-only view of a pod's JSON that tolerates any shape (the planner never trusts its input).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// Borrowed view of a pod object as received.
#[derive(Clone, Copy, Debug)]
pub struct PodView<'a> {
    raw: &'a Value,
    namespace: &'a str,
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

// === impl PodView ===

impl<'a> PodView<'a> {
    /// A view of `raw`; `namespace` is the admission request's (a new pod's metadata may lack it).
    pub fn new(raw: &'a Value, namespace: &'a str) -> Self {
        Self { raw, namespace }
    }

    /// The object as received.
    pub fn raw(&self) -> &'a Value {
        self.raw
    }

    /// The namespace the pod is created in.
    pub fn namespace(&self) -> &'a str {
        self.namespace
    }

    fn meta_str(&self, key: &str) -> &'a str {
        self.raw
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.name`, empty for pods named by `generateName`.
    pub fn name(&self) -> &'a str {
        self.meta_str("name")
    }

    /// `metadata.generateName`.
    pub fn generate_name(&self) -> &'a str {
        self.meta_str("generateName")
    }

    /// Whether `metadata` exists as an object.
    pub fn has_metadata(&self) -> bool {
        self.raw.get("metadata").is_some_and(Value::is_object)
    }

    /// `metadata.labels` (string values only).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.string_map("labels")
    }

    /// `metadata.annotations` (string values only).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.string_map("annotations")
    }

    /// Whether `metadata.<field>` exists as an object.
    pub fn has_meta_map(&self, field: &str) -> bool {
        self.raw
            .pointer(&format!("/metadata/{field}"))
            .is_some_and(Value::is_object)
    }

    fn string_map(&self, field: &str) -> BTreeMap<String, String> {
        self.raw
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `spec.hostNetwork`.
    pub fn host_network(&self) -> bool {
        self.raw
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The containers of one list; empty when absent or not a list.
    pub fn containers(&self, list: ContainerList) -> &'a [Value] {
        self.raw
            .get("spec")
            .and_then(|s| s.get(list.field()))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether `spec.<list>` exists as a list.
    pub fn has_list(&self, field: &str) -> bool {
        self.raw
            .get("spec")
            .and_then(|s| s.get(field))
            .is_some_and(Value::is_array)
    }

    /// `spec.volumes`.
    pub fn volumes(&self) -> &'a [Value] {
        self.raw
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Position and value of the container `name` in `list`.
    pub fn find_container(&self, list: ContainerList, name: &str) -> Option<(usize, &'a Value)> {
        self.containers(list)
            .iter()
            .enumerate()
            .find(|(_, c)| container_name(c) == name)
    }

    /// The uid a container runs as, when the spec says (container first, then pod).
    pub fn effective_run_as_user(&self, container: &Value) -> Option<i64> {
        container
            .pointer("/securityContext/runAsUser")
            .and_then(Value::as_i64)
            .or_else(|| {
                self.raw
                    .pointer("/spec/securityContext/runAsUser")
                    .and_then(Value::as_i64)
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

/// A container's `name`, empty if absent.
pub fn container_name(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// Whether a container is privileged or can change the pod's network rules.
pub fn can_change_network(c: &Value) -> bool {
    let privileged = c
        .pointer("/securityContext/privileged")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let adds = c
        .pointer("/securityContext/capabilities/add")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    privileged
        || adds.iter().filter_map(Value::as_str).any(|cap| {
            let cap = cap.trim_start_matches("CAP_");
            cap.eq_ignore_ascii_case("NET_ADMIN") || cap.eq_ignore_ascii_case("ALL")
        })
}
