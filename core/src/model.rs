//! aad-pod-identity's identity resources (v1, v1.8 JSON casing) and the per-namespace index of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names;

/// What kind of credential an AzureIdentity stands for (`spec.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum IdentityType {
    /// 0: a user-assigned managed identity, fetched from the node's IMDS.
    UserAssignedMsi,
    /// 1: a service principal with a client secret.
    ServicePrincipal,
    /// 2: a service principal with a certificate.
    ServicePrincipalCertificate,
}

impl IdentityType {
    /// The integer aad-pod-identity stores in `spec.type`.
    pub fn code(self) -> i64 {
        match self {
            Self::UserAssignedMsi => 0,
            Self::ServicePrincipal => 1,
            Self::ServicePrincipalCertificate => 2,
        }
    }

    /// Whether tokens come from Azure AD with a Secret mounted into the proxy.
    pub fn is_service_principal(self) -> bool {
        !matches!(self, Self::UserAssignedMsi)
    }
}

impl TryFrom<i64> for IdentityType {
    type Error = String;

    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            0 => Ok(Self::UserAssignedMsi),
            1 => Ok(Self::ServicePrincipal),
            2 => Ok(Self::ServicePrincipalCertificate),
            other => Err(format!(
                "spec.type {other} is not one of 0 (user-assigned managed identity), \
                 1 (service principal, secret), 2 (service principal, certificate)"
            )),
        }
    }
}

impl From<IdentityType> for i64 {
    fn from(t: IdentityType) -> i64 {
        t.code()
    }
}

/// A reference to a Secret (`spec.clientPassword`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Secret namespace; podid can only mount Secrets of the pod's own namespace.
    #[serde(default)]
    pub namespace: String,
}

/// `AzureIdentity.spec`, field names exactly as aad-pod-identity v1.8 stores them.
///
/// Lower-case aliases accept objects written before aad-pod-identity's CRDs had a
/// structural schema (its Go decoder was case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureIdentitySpec {
    /// Credential kind.
    #[serde(rename = "type")]
    pub kind: IdentityType,
    /// ARM id of the user-assigned identity (type 0).
    #[serde(rename = "resourceID", alias = "resourceid", default)]
    pub resource_id: String,
    /// Client (application) id.
    #[serde(rename = "clientID", alias = "clientid", default)]
    pub client_id: String,
    /// Tenant of the service principal (types 1 and 2).
    #[serde(
        rename = "tenantID",
        alias = "tenantid",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub tenant_id: String,
    /// Secret holding the service principal's credential (types 1 and 2).
    #[serde(
        rename = "clientPassword",
        alias = "clientpassword",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_password: Option<SecretRef>,
    /// Azure AD authority host for the service principal, if not the public cloud's.
    #[serde(
        rename = "adEndpoint",
        alias = "adendpoint",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ad_endpoint: String,
    /// Optional AD resource id (kept for compatibility, unused).
    #[serde(
        rename = "adResourceID",
        alias = "adresourceid",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ad_resource_id: String,
}

/// `AzureIdentityBinding.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureIdentityBindingSpec {
    /// Name of an AzureIdentity in the same namespace.
    #[serde(rename = "azureIdentity", alias = "azureidentity", default)]
    pub azure_identity: String,
    /// Compared for equality with the pod's `aadpodidbinding` label.
    #[serde(default)]
    pub selector: String,
}

/// Where the proxy gets an identity's tokens (AzureIdentity annotation `podid.io/credential`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Credential {
    /// No annotation: as `spec.type` says (node IMDS, or a Secret).
    #[default]
    Spec,
    /// `federated`: Entra ID with the pod's projected service-account token; no IMDS, no VM assignment.
    Federated,
    /// Any other value, kept so that resolution can say what is wrong.
    Unknown(String),
}

impl Credential {
    /// The credential an annotation value (absent: `None`) selects.
    pub fn from_annotation(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("") => Self::Spec,
            Some(v) if v == names::CREDENTIAL_FEDERATED => Self::Federated,
            Some(v) => Self::Unknown(v.to_owned()),
        }
    }
}

/// An AzureIdentity object, reduced to what podid reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureIdentity {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec`.
    pub spec: AzureIdentitySpec,
    /// The `podid.io/credential` annotation.
    pub credential: Credential,
}

impl AzureIdentity {
    /// Whether tokens come from workload identity federation (never from IMDS).
    pub fn is_federated(&self) -> bool {
        self.credential == Credential::Federated
    }
}

/// An AzureIdentityBinding object, reduced to what podid reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureIdentityBinding {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec`.
    pub spec: AzureIdentityBindingSpec,
}

/// Errors reading identity objects from JSON or YAML.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A document could not be parsed at all.
    #[error("document {index}: not valid YAML/JSON: {message}")]
    Syntax {
        /// 0-based document index in the file.
        index: usize,
        /// Parser message.
        message: String,
    },
    /// A document is an identity object but its fields are wrong.
    #[error("document {index} ({kind} {name:?}): {message}")]
    Invalid {
        /// 0-based document index in the file.
        index: usize,
        /// The object's kind.
        kind: String,
        /// The object's name, if it has one.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// All identity objects podid knows about, indexed by namespace.
///
/// A plain data structure: the webhook fills it from a watch cache or a file,
/// the controller from its own watches, tests by hand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityIndex {
    namespaces: BTreeMap<String, NamespaceIdentities>,
}

/// The identity objects of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceIdentities {
    /// AzureIdentity objects by name.
    pub identities: BTreeMap<String, AzureIdentity>,
    /// AzureIdentityBinding objects by name.
    pub bindings: BTreeMap<String, AzureIdentityBinding>,
}

// === impl IdentityIndex ===

impl IdentityIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an AzureIdentity.
    pub fn upsert_identity(&mut self, id: AzureIdentity) {
        let ns = self.namespaces.entry(id.namespace.clone()).or_default();
        ns.identities.insert(id.name.clone(), id);
    }

    /// Adds or replaces an AzureIdentityBinding.
    pub fn upsert_binding(&mut self, b: AzureIdentityBinding) {
        let ns = self.namespaces.entry(b.namespace.clone()).or_default();
        ns.bindings.insert(b.name.clone(), b);
    }

    /// Removes an AzureIdentity, if present.
    pub fn remove_identity(&mut self, namespace: &str, name: &str) {
        if let Some(ns) = self.namespaces.get_mut(namespace) {
            ns.identities.remove(name);
        }
    }

    /// Removes an AzureIdentityBinding, if present.
    pub fn remove_binding(&mut self, namespace: &str, name: &str) {
        if let Some(ns) = self.namespaces.get_mut(namespace) {
            ns.bindings.remove(name);
        }
    }

    /// The AzureIdentity `name` in `namespace`.
    pub fn identity(&self, namespace: &str, name: &str) -> Option<&AzureIdentity> {
        self.namespaces.get(namespace)?.identities.get(name)
    }

    /// Bindings of `namespace` whose selector equals `selector`, in name order.
    pub fn bindings_with_selector<'a>(
        &'a self,
        namespace: &str,
        selector: &'a str,
    ) -> impl Iterator<Item = &'a AzureIdentityBinding> + 'a {
        self.namespaces
            .get(namespace)
            .into_iter()
            .flat_map(|ns| ns.bindings.values())
            .filter(move |b| b.spec.selector == selector)
    }

    /// Number of AzureIdentity objects over all namespaces.
    pub fn identity_count(&self) -> usize {
        self.namespaces.values().map(|ns| ns.identities.len()).sum()
    }

    /// Number of AzureIdentityBinding objects over all namespaces.
    pub fn binding_count(&self) -> usize {
        self.namespaces.values().map(|ns| ns.bindings.len()).sum()
    }
}
