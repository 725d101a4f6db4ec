//! `podid inject`: the webhook's planner applied to manifests, like `istioctl kube-inject`.

use podid_core::inject::{Decision, InjectConfig, plan};
use podid_core::model::IdentityIndex;
use podid_core::pod::PodView;
use serde::Deserialize;
use serde_json::{Value, json};

/// Why a manifest could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The input is not YAML or JSON.
    #[error("document {index}: not valid YAML/JSON: {message}")]
    Parse {
        /// 0-based document index.
        index: usize,
        /// Parser message.
        message: String,
    },
    /// The webhook would deny the pod.
    #[error("{object}: denied: {message}")]
    Denied {
        /// `Kind namespace/name` of the manifest.
        object: String,
        /// The denial message.
        message: String,
    },
    /// Output could not be written as YAML.
    #[error("writing YAML: {0}")]
    Render(String),
}

/// The injected manifests and the warnings the webhook would return.
#[derive(Debug, Default)]
pub struct Injected {
    /// Multi-document YAML.
    pub yaml: String,
    /// Warnings, one per line.
    pub warnings: Vec<String>,
}

/// Where each workload kind keeps its pod template.
fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// Injects every pod and pod template in a multi-document YAML; other objects pass through.
pub fn inject_documents(
    input: &str,
    index: &IdentityIndex,
    cfg: &InjectConfig,
    default_namespace: &str,
) -> Result<Injected, InjectError> {
    let mut out = Injected::default();
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let mut value = Value::deserialize(doc).map_err(|e| InjectError::Parse {
            index: i,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        inject_object(&mut value, index, cfg, default_namespace, &mut out.warnings)?;
        docs.push(serde_yaml::to_string(&value).map_err(|e| InjectError::Render(e.to_string()))?);
    }
    out.yaml = docs.join("---\n");
    Ok(out)
}

fn inject_object(
    obj: &mut Value,
    index: &IdentityIndex,
    cfg: &InjectConfig,
    default_ns: &str,
    warnings: &mut Vec<String>,
) -> Result<(), InjectError> {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind == "List" {
        if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                inject_object(item, index, cfg, default_ns, warnings)?;
            }
        }
        return Ok(());
    }
    let Some(pointer) = template_pointer(&kind) else {
        return Ok(());
    };
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_ns)
        .to_owned();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let object = format!("{kind} {namespace}/{name}");
    let Some(template) = obj.pointer_mut(pointer) else {
        return Ok(());
    };
    if !template.get("metadata").is_some_and(Value::is_object) {
        template["metadata"] = json!({});
    }
    // Templates have no name; plan as the controller's pods would arrive, named by generateName.
    let mut as_admitted = template.clone();
    if kind != "Pod" {
        as_admitted["metadata"]["generateName"] = json!(format!("{name}-"));
    }
    match plan(&PodView::new(&as_admitted, &namespace), index, cfg) {
        Decision::Skip { warnings: w, .. } => warnings.extend(w),
        Decision::Inject {
            patch, warnings: w, ..
        } => {
            warnings.extend(w);
            json_patch::patch(template, &patch).map_err(|e| InjectError::Denied {
                object: object.clone(),
                message: format!("internal error applying the patch: {e}"),
            })?;
        }
        Decision::Deny { message, .. } => return Err(InjectError::Denied { object, message }),
    }
    Ok(())
}
