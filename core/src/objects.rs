//! Reading identity objects from Kubernetes JSON or a multi-document YAML file.

use serde::Deserialize;
use serde_json::Value;

use crate::model::{
    AzureIdentity, AzureIdentityBinding, AzureIdentityBindingSpec, AzureIdentitySpec, Credential,
    IdentityIndex, ModelError,
};
use crate::names;

/// One identity object read from JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityObject {
    /// An AzureIdentity.
    Identity(AzureIdentity),
    /// An AzureIdentityBinding.
    Binding(AzureIdentityBinding),
}

/// Reads an AzureIdentity or AzureIdentityBinding from its Kubernetes JSON.
///
/// `default_namespace` applies when `metadata.namespace` is absent (as `kubectl apply -n` would).
pub fn identity_object_from_json(
    obj: &Value,
    default_namespace: &str,
    index: usize,
) -> Result<IdentityObject, ModelError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or(default_namespace)
        .to_owned();
    let invalid = |message: String| ModelError::Invalid {
        index,
        kind: kind.to_owned(),
        name: name.clone(),
        message,
    };
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != names::IDENTITY_API_VERSION {
        return Err(invalid(format!(
            "apiVersion is {api_version:?}, expected {:?}",
            names::IDENTITY_API_VERSION
        )));
    }
    if name.is_empty() {
        return Err(invalid("metadata.name is missing".into()));
    }
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    match kind {
        names::AZURE_IDENTITY_KIND => {
            let spec = AzureIdentitySpec::deserialize(spec).map_err(|e| invalid(e.to_string()))?;
            let credential = meta
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get(names::CREDENTIAL_ANNOTATION))
                .map(|v| v.as_str().unwrap_or("(not a string)"));
            Ok(IdentityObject::Identity(AzureIdentity {
                name,
                namespace,
                spec,
                credential: Credential::from_annotation(credential),
            }))
        }
        names::AZURE_IDENTITY_BINDING_KIND => {
            let spec =
                AzureIdentityBindingSpec::deserialize(spec).map_err(|e| invalid(e.to_string()))?;
            Ok(IdentityObject::Binding(AzureIdentityBinding {
                name,
                namespace,
                spec,
            }))
        }
        other => Err(invalid(format!(
            "kind {other:?} is not {:?} or {:?}",
            names::AZURE_IDENTITY_KIND,
            names::AZURE_IDENTITY_BINDING_KIND
        ))),
    }
}

/// Reads a multi-document YAML (or JSON) file of AzureIdentity and AzureIdentityBinding
/// objects, and `List` objects holding them, into an index.
///
/// Empty documents are skipped; any other kind is an error, so that a typo is not ignored.
pub fn parse_identities_yaml(
    text: &str,
    default_namespace: &str,
) -> Result<IdentityIndex, ModelError> {
    let mut index = IdentityIndex::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| ModelError::Syntax {
            index: i,
            message: e.to_string(),
        })?;
        let items = match value {
            Value::Null => continue,
            Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => o
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            other => vec![other],
        };
        for item in &items {
            match identity_object_from_json(item, default_namespace, i)? {
                IdentityObject::Identity(id) => index.upsert_identity(id),
                IdentityObject::Binding(b) => index.upsert_binding(b),
            }
        }
    }
    Ok(index)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::IdentityType;

    const FILE: &str = r#"
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: reader
  namespace: apps
spec:
  type: 0
  resourceID: /subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader
  clientID: 00000000-0000-0000-0000-000000000001
---
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata:
  name: reader-binding
spec:
  azureIdentity: reader
  selector: reader
"#;

    #[test]
    fn multi_document_file_fills_index_with_default_namespace() {
        let index = parse_identities_yaml(FILE, "apps").unwrap();
        let id = index.identity("apps", "reader").unwrap();
        assert_eq!(id.spec.kind, IdentityType::UserAssignedMsi);
        assert_eq!(id.spec.client_id, "00000000-0000-0000-0000-000000000001");
        let bindings: Vec<_> = index.bindings_with_selector("apps", "reader").collect();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].spec.azure_identity, "reader");
    }

    #[test]
    fn lower_case_field_names_of_old_objects_are_accepted() {
        let obj = serde_json::json!({
            "apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
            "metadata": {"name": "old", "namespace": "x"},
            "spec": {"type": 1, "clientid": "c", "tenantid": "t",
                     "clientpassword": {"name": "s", "namespace": "x"}}
        });
        let IdentityObject::Identity(id) = identity_object_from_json(&obj, "d", 0).unwrap() else {
            panic!("not an identity")
        };
        assert_eq!(id.spec.kind, IdentityType::ServicePrincipal);
        assert_eq!(id.spec.tenant_id, "t");
        assert_eq!(id.spec.client_password.unwrap().name, "s");
    }

    #[test]
    fn the_credential_annotation_is_read_and_unknown_values_are_kept() {
        let obj = |annotations: serde_json::Value| {
            let obj = serde_json::json!({
                "apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
                "metadata": {"name": "f", "namespace": "x", "annotations": annotations},
                "spec": {"type": 0, "clientID": "c", "tenantID": "t"}
            });
            match identity_object_from_json(&obj, "d", 0).unwrap() {
                IdentityObject::Identity(id) => id.credential,
                IdentityObject::Binding(_) => panic!("not an identity"),
            }
        };
        assert_eq!(
            obj(serde_json::json!({"podid.io/credential": "federated"})),
            Credential::Federated
        );
        assert_eq!(obj(serde_json::json!({})), Credential::Spec);
        assert_eq!(
            obj(serde_json::json!({"podid.io/credential": "Federated"})),
            Credential::Unknown("Federated".into())
        );
        assert_eq!(
            obj(serde_json::json!({"podid.io/credential": 1})),
            Credential::Unknown("(not a string)".into())
        );
    }

    #[test]
    fn list_objects_are_flattened() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentityBinding",
             "metadata": {"name": "b", "namespace": "n"}, "spec": {"azureIdentity": "i", "selector": "s"}}]}"#;
        let index = parse_identities_yaml(text, "default").unwrap();
        assert_eq!(index.binding_count(), 1);
    }

    #[test]
    fn unknown_type_and_kind_and_syntax_errors_name_the_document() {
        let bad_type = "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata: {name: a}\nspec: {type: 7}\n";
        let err = parse_identities_yaml(bad_type, "d")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("document 0") && err.contains("spec.type 7"),
            "{err}"
        );
        let bad_kind =
            "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentiti\nmetadata: {name: a}\n";
        let err = parse_identities_yaml(bad_kind, "d")
            .unwrap_err()
            .to_string();
        assert!(err.contains("AzureIdentiti"), "{err}");
        let err = parse_identities_yaml("a: [", "d").unwrap_err();
        assert!(matches!(err, ModelError::Syntax { index: 0, .. }), "{err}");
    }
}
