//! Builders shared by the planner's table tests: identities, pods, nodes, ids.

use std::collections::{BTreeMap, BTreeSet};

use podid_core::model::{
    AzureIdentity, AzureIdentityBinding, AzureIdentityBindingSpec, AzureIdentitySpec,
    IdentityIndex, IdentityType,
};
use podid_core::names;

use crate::plan::{ClusterView, Desired, PodInfo, PodPhase, Target, desired_state};

/// The ARM id of user-assigned identity `name`, in ARM's usual casing.
pub fn uid(name: &str) -> String {
    format!(
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

/// Its canonical form.
pub fn canon(name: &str) -> String {
    uid(name).to_ascii_lowercase()
}

/// A type-0 AzureIdentity `name` in `ns` for identity `name`.
pub fn msi(ns: &str, name: &str) -> AzureIdentity {
    msi_with_id(ns, name, &uid(name))
}

/// A type-0 AzureIdentity with an explicit `spec.resourceID`.
pub fn msi_with_id(ns: &str, name: &str, resource_id: &str) -> AzureIdentity {
    AzureIdentity {
        name: name.into(),
        namespace: ns.into(),
        spec: AzureIdentitySpec {
            kind: IdentityType::UserAssignedMsi,
            resource_id: resource_id.into(),
            client_id: format!("client-{name}"),
            tenant_id: String::new(),
            client_password: None,
            ad_endpoint: String::new(),
            ad_resource_id: String::new(),
        },
        credential: Default::default(),
    }
}

/// A binding `name` in `ns` from `selector` to identity `identity`.
pub fn binding(ns: &str, name: &str, identity: &str, selector: &str) -> AzureIdentityBinding {
    AzureIdentityBinding {
        name: name.into(),
        namespace: ns.into(),
        spec: AzureIdentityBindingSpec {
            azure_identity: identity.into(),
            selector: selector.into(),
        },
    }
}

/// An index holding `ids`.
pub fn index(ids: impl IntoIterator<Item = AzureIdentity>) -> IdentityIndex {
    let mut index = IdentityIndex::new();
    for id in ids {
        index.upsert_identity(id);
    }
    index
}

/// A running pod `ns/name` on `node` naming `identities` in its annotation.
pub fn pod(ns: &str, name: &str, node: &str, identities: &str) -> PodInfo {
    let mut annotations = BTreeMap::new();
    if !identities.is_empty() {
        annotations.insert(names::IDENTITY_ANNOTATION.to_owned(), identities.to_owned());
    }
    PodInfo {
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{ns}-{name}"),
        node_name: (!node.is_empty()).then(|| node.to_owned()),
        phase: PodPhase::Running,
        labels: BTreeMap::new(),
        annotations,
    }
}

/// providerID of standalone VM `vm`.
pub fn vm_provider(vm: &str) -> String {
    format!(
        "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{vm}"
    )
}

/// providerID of instance `n` of scale set `set`.
pub fn vmss_provider(set: &str, n: u32) -> String {
    format!(
        "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/{set}/virtualMachines/{n}"
    )
}

/// The target of standalone VM `vm`.
pub fn vm(name: &str) -> Target {
    Target::from_provider_id(&vm_provider(name)).expect("valid providerID")
}

/// The target of scale set `set`.
pub fn vmss(set: &str) -> Target {
    Target::from_provider_id(&vmss_provider(set, 0)).expect("valid providerID")
}

/// Nodes: `node-vm0` on VM vm0, `node-ss0-<n>` on scale set ss0, `kind-node` not on Azure.
pub fn nodes() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("node-vm0".into(), vm_provider("vm0")),
        ("node-vm1".into(), vm_provider("vm1")),
        ("node-ss0-0".into(), vmss_provider("ss0", 0)),
        ("node-ss0-1".into(), vmss_provider("ss0", 1)),
        ("kind-node".into(), "kind://docker/kind/kind-worker".into()),
        ("new-node".into(), String::new()),
    ])
}

/// Opted-in namespaces.
pub fn opted_in(namespaces: &[&str]) -> BTreeSet<String> {
    namespaces.iter().map(|s| (*s).to_owned()).collect()
}

/// The desired state of `pods` over [`nodes`], with `index`, namespaces `ns1` and `ns2` opted in.
pub fn desired(pods: &[PodInfo], index: &IdentityIndex) -> Desired {
    let nodes = nodes();
    let opted_in = opted_in(&["ns1", "ns2", "kube-system"]);
    desired_state(&ClusterView {
        pods,
        nodes: &nodes,
        identities: index,
        opted_in: &opted_in,
    })
}

/// The canonical ids desired on `target`.
pub fn needed_on(d: &Desired, target: &Target) -> Vec<String> {
    d.targets
        .get(target)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
