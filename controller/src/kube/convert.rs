//! Kubernetes objects reduced to what the controller reads: pods, nodes, namespaces, identity objects.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{ApiResource, DynamicObject};
use podid_core::names;
use podid_core::objects::{IdentityObject, identity_object_from_json};
use tracing::warn;

use crate::plan::{PodInfo, PodPhase};

/// The `podid.io/IdentityAssigned` condition as a pod carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConditionState {
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// `reason`.
    pub reason: String,
    /// `message`.
    pub message: String,
}

/// A watched pod: what the planner reads, plus the condition the controller last wrote on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchedPod {
    /// The planner's view.
    pub info: PodInfo,
    /// The current `podid.io/IdentityAssigned` condition, if any.
    pub condition: Option<ConditionState>,
}

/// Reduces a pod; `None` for a pod being deleted without a name.
pub fn pod(pod: &Pod) -> Option<WatchedPod> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == names::CONDITION_IDENTITY_ASSIGNED)
        })
        .map(|c| ConditionState {
            status: c.status.clone(),
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        });
    let info = PodInfo {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone()?,
        uid: meta.uid.clone().unwrap_or_default(),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        phase: PodPhase::parse(status.and_then(|s| s.phase.as_deref())),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
    };
    Some(WatchedPod { info, condition })
}

/// A node's `spec.providerID` (empty while the cloud provider has not set it).
pub fn node_provider_id(node: &Node) -> Option<String> {
    Some(
        node.spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .unwrap_or_default(),
    )
}

/// `Some(())` for a namespace labelled `podid.io/inject=enabled`.
pub fn namespace_opted_in(ns: &Namespace) -> Option<()> {
    let labels = ns.metadata.labels.as_ref()?;
    (labels.get(names::INJECT_LABEL).map(String::as_str) == Some(names::INJECT_ENABLED))
        .then_some(())
}

/// An AzureIdentity or AzureIdentityBinding; an invalid one is logged and treated as absent.
///
/// List items may come without `apiVersion` and `kind`; they are filled in
/// from the watched resource.
pub fn identity_object(resource: &ApiResource, obj: &DynamicObject) -> Option<IdentityObject> {
    let mut json = serde_json::to_value(obj).ok()?;
    if let Some(map) = json.as_object_mut() {
        for (field, value) in [
            ("apiVersion", &resource.api_version),
            ("kind", &resource.kind),
        ] {
            let absent = map
                .get(field)
                .and_then(|v| v.as_str())
                .is_none_or(str::is_empty);
            if absent {
                map.insert(field.into(), value.clone().into());
            }
        }
    }
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    match identity_object_from_json(&json, &namespace, 0) {
        Ok(value) => Some(value),
        Err(e) => {
            let name = obj.metadata.name.clone().unwrap_or_default();
            warn!(%namespace, %name, kind = %resource.kind, error = %e, "ignoring invalid identity object");
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube::api::GroupVersionKind;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_its_planner_fields_and_its_identity_condition() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "apps", "uid": "u1",
                         "labels": {"aadpodidbinding": "s"}, "annotations": {"podid.io/identity": "a"}},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "podid.io/IdentityAssigned", "status": "False", "reason": "R", "message": "M"}
            ]}
        }))
        .unwrap();
        let w = pod(&p).unwrap();
        assert_eq!(
            (
                w.info.name.as_str(),
                w.info.namespace.as_str(),
                w.info.uid.as_str()
            ),
            ("p", "apps", "u1")
        );
        assert_eq!(w.info.node_name.as_deref(), Some("n1"));
        assert_eq!(w.info.phase, PodPhase::Running);
        assert_eq!(w.info.labels["aadpodidbinding"], "s");
        assert_eq!(
            w.condition,
            Some(ConditionState {
                status: "False".into(),
                reason: "R".into(),
                message: "M".into()
            })
        );
    }

    #[test]
    fn only_namespaces_labelled_inject_enabled_are_opted_in() {
        let ns = |labels: serde_json::Value| -> Namespace {
            serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}})).unwrap()
        };
        assert!(namespace_opted_in(&ns(json!({"podid.io/inject": "enabled"}))).is_some());
        assert!(namespace_opted_in(&ns(json!({"podid.io/inject": "disabled"}))).is_none());
        assert!(namespace_opted_in(&ns(json!({}))).is_none());
    }

    #[test]
    fn identity_list_items_without_type_fields_are_still_read() {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
            names::IDENTITY_GROUP,
            names::IDENTITY_VERSION,
            names::AZURE_IDENTITY_KIND,
        ));
        let obj: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "reader", "namespace": "apps"},
            "spec": {"type": 0, "resourceID": "/x", "clientID": "c"}
        }))
        .unwrap();
        let Some(IdentityObject::Identity(id)) = identity_object(&ar, &obj) else {
            panic!("not read")
        };
        assert_eq!(
            (id.name.as_str(), id.namespace.as_str()),
            ("reader", "apps")
        );
    }
}
