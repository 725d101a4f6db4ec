//! The `podid.io/status` annotation: what the webhook injected and which identities it resolved.

use serde::{Deserialize, Serialize};

use crate::resolve::ResolvedIdentity;

/// Version of the status schema written by this release.
pub const STATUS_VERSION: u32 = 1;

/// Where the proxy sits in the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The proxy is an init container with `restartPolicy: Always` (Kubernetes ≥ 1.29).
    Native,
    /// The proxy is the first regular container, with a `postStart` hook.
    Legacy,
}

/// One resolved identity, as recorded in the annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusIdentity {
    /// AzureIdentity name.
    pub name: String,
    /// `spec.type`.
    #[serde(rename = "type")]
    pub kind: i64,
    /// `spec.clientID`.
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// `spec.resourceID` (type 0), empty otherwise.
    #[serde(rename = "resourceID")]
    pub resource_id: String,
    /// `federated` for a workload-identity-federated identity (annotation `podid.io/credential`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential: String,
}

/// The JSON value of `podid.io/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectionStatus {
    /// Schema version.
    pub version: u32,
    /// Native-sidecar or legacy layout.
    pub layout: Layout,
    /// Init containers podid added, in order.
    pub init_containers: Vec<String>,
    /// Regular containers podid added.
    pub containers: Vec<String>,
    /// Volumes podid added.
    pub volumes: Vec<String>,
    /// Identities the proxy serves; the first is the default.
    pub identities: Vec<StatusIdentity>,
}

impl StatusIdentity {
    /// The record of a resolved identity.
    pub fn from_resolved(r: &ResolvedIdentity) -> Self {
        let spec = &r.identity.spec;
        Self {
            name: r.name.clone(),
            kind: spec.kind.code(),
            client_id: spec.client_id.clone(),
            resource_id: spec.resource_id.clone(),
            credential: if r.identity.is_federated() {
                crate::names::CREDENTIAL_FEDERATED.to_owned()
            } else {
                String::new()
            },
        }
    }
}
