//! Desired state: which user-assigned identities each VM or scale set must carry, and why (which pods).

use std::collections::{BTreeMap, BTreeSet};

use podid_core::azure_ids::{ProviderIdError, Target, canonical_id};
use podid_core::model::{IdentityIndex, IdentityType};
use podid_core::names;
use podid_core::resolve::{ResolveError, ResolvedIdentity, Source, resolve_identities};

use super::input::{ClusterView, PodInfo, PodKey};

/// An identity some pods need on a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeededIdentity {
    /// The ARM id to send, as an AzureIdentity writes it (the smallest
    /// spelling when several objects write it differently, so plans are stable).
    pub resource_id: String,
    /// `spec.clientID` of the AzureIdentity (protection by client id).
    pub client_id: String,
    /// The pods that need it there.
    pub pods: BTreeSet<PodKey>,
}

/// An identity a pod wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedIdentity {
    /// The AzureIdentity's name.
    pub name: String,
    /// `spec.resourceID` as written.
    pub resource_id: String,
    /// Its canonical (lower-case) form.
    pub canonical: String,
    /// `spec.clientID`.
    pub client_id: String,
}

/// Why (part of) a pod's need cannot be met. Reported on the pod; never stops other pods.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PodProblem {
    /// The pod's node is not (yet) known to the controller.
    #[error("node {node:?} is not known to the controller yet")]
    UnknownNode {
        /// `spec.nodeName`.
        node: String,
    },
    /// The node's providerID names no Azure VM or scale set.
    #[error("node {node:?}: {source}")]
    NotAzure {
        /// `spec.nodeName`.
        node: String,
        /// The parse failure.
        source: ProviderIdError,
    },
    /// An identity reference does not resolve in the pod's namespace.
    #[error(transparent)]
    Unresolved(ResolveError),
    /// A type-0 AzureIdentity without `spec.resourceID`.
    #[error("AzureIdentity {name:?} in namespace {namespace:?} (type 0) has no spec.resourceID")]
    NoResourceId {
        /// The identity.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// A type-0 AzureIdentity whose `spec.resourceID` is not a user-assigned identity id.
    #[error(
        "AzureIdentity {name:?} in namespace {namespace:?}: spec.resourceID {resource_id:?} is not \
         /subscriptions/…/resourceGroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/…"
    )]
    BadResourceId {
        /// The identity.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The value written.
        resource_id: String,
    },
}

impl PodProblem {
    /// A stable, bounded label (metrics, Event reasons).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownNode { .. } => "unknown_node",
            Self::NotAzure { .. } => "not_azure",
            Self::Unresolved(_) => "unresolved",
            Self::NoResourceId { .. } => "no_resource_id",
            Self::BadResourceId { .. } => "bad_resource_id",
        }
    }
}

/// What one pod wants, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNeed {
    /// The pod.
    pub pod: PodKey,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.nodeName`.
    pub node: String,
    /// The VM or scale set hosting the node, when known.
    pub target: Option<Target>,
    /// Its type-0 identities that resolved, default first.
    pub identities: Vec<WantedIdentity>,
    /// What could not be honoured.
    pub problems: Vec<PodProblem>,
}

/// The desired state of every target, and the per-pod view of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Target → canonical identity id → who needs it.
    pub targets: BTreeMap<Target, BTreeMap<String, NeededIdentity>>,
    /// Every pod in scope (opted-in namespace, scheduled, not finished).
    pub pods: Vec<PodNeed>,
}

/// Computes the desired state from the cluster.
///
/// # Guarantees
/// - Only pods of opted-in namespaces (never `kube-system`, `kube-public`,
///   `kube-node-lease`), with `spec.nodeName`, not `Succeeded`/`Failed`.
/// - Identities are resolved from the index, as the webhook does; ids written
///   in pod annotations are never read.
/// - The target comes from the node's providerID, never from its name.
/// - A problem with one pod or one identity never affects another.
pub fn desired_state(view: &ClusterView<'_>) -> Desired {
    let mut desired = Desired::default();
    for pod in view.pods.iter().filter(|p| in_scope(p, view)) {
        let need = pod_need(pod, view);
        if let Some(target) = need.target.as_ref().filter(|_| !need.identities.is_empty()) {
            let needed = desired.targets.entry(target.clone()).or_default();
            for w in &need.identities {
                add_need(needed, w, &need.pod);
            }
        }
        desired.pods.push(need);
    }
    desired
}

fn in_scope(pod: &PodInfo, view: &ClusterView<'_>) -> bool {
    view.opted_in.contains(&pod.namespace)
        && !names::SYSTEM_NAMESPACES.contains(&pod.namespace.as_str())
        && pod.node_name.as_deref().is_some_and(|n| !n.is_empty())
        && !pod.phase.is_finished()
}

fn add_need(needed: &mut BTreeMap<String, NeededIdentity>, w: &WantedIdentity, pod: &PodKey) {
    let entry = needed
        .entry(w.canonical.clone())
        .or_insert_with(|| NeededIdentity {
            resource_id: w.resource_id.clone(),
            client_id: w.client_id.clone(),
            pods: BTreeSet::new(),
        });
    if w.resource_id < entry.resource_id {
        entry.resource_id = w.resource_id.clone();
        entry.client_id = w.client_id.clone();
    }
    entry.pods.insert(pod.clone());
}

fn pod_need(pod: &PodInfo, view: &ClusterView<'_>) -> PodNeed {
    let node = pod.node_name.clone().unwrap_or_default();
    let mut problems = Vec::new();
    let target = match view.nodes.get(&node) {
        None => {
            problems.push(PodProblem::UnknownNode { node: node.clone() });
            None
        }
        Some(provider_id) => match Target::from_provider_id(provider_id) {
            Ok(t) => Some(t),
            Err(source) => {
                let node = node.clone();
                problems.push(PodProblem::NotAzure { node, source });
                None
            }
        },
    };
    let (resolved, unresolved) = resolve_pod(pod, view.identities);
    problems.extend(unresolved.into_iter().map(PodProblem::Unresolved));
    let mut identities = Vec::new();
    for r in resolved
        .iter()
        // Federated identities get tokens from Entra ID, never from the node: nothing to assign.
        .filter(|r| {
            r.identity.spec.kind == IdentityType::UserAssignedMsi && !r.identity.is_federated()
        })
    {
        match wanted(r) {
            Ok(w) => identities.push(w),
            Err(p) => problems.push(p),
        }
    }
    PodNeed {
        pod: PodKey::of(pod),
        uid: pod.uid.clone(),
        node,
        target,
        identities,
        problems,
    }
}

/// Resolves as the webhook does; when that fails as a whole, each reference
/// on its own, so one missing identity does not take the pod's others away.
fn resolve_pod(pod: &PodInfo, index: &IdentityIndex) -> (Vec<ResolvedIdentity>, Vec<ResolveError>) {
    let ns = &pod.namespace;
    if let Ok(all) = resolve_identities(ns, &pod.labels, &pod.annotations, index) {
        return (all, Vec::new());
    }
    let (mut found, mut problems) = (Vec::<ResolvedIdentity>::new(), Vec::new());
    let mut one = |name: &str, binding: Option<&str>| {
        let annotation = BTreeMap::from([(names::IDENTITY_ANNOTATION.to_owned(), name.to_owned())]);
        match resolve_identities(ns, &BTreeMap::new(), &annotation, index) {
            Ok(v) => found.extend(v.into_iter().map(|mut r| {
                if let Some(b) = binding {
                    r.source = Source::Binding(b.to_owned());
                }
                r
            })),
            Err(ResolveError::NotFound { name, namespace }) if binding.is_some() => {
                problems.push(ResolveError::BindingTargetNotFound {
                    name,
                    binding: binding.unwrap_or_default().to_owned(),
                    namespace,
                })
            }
            Err(e) => problems.push(e),
        }
    };
    let written = pod.annotations.get(names::IDENTITY_ANNOTATION);
    for name in written
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if !name.is_empty() {
            one(name, None);
        }
    }
    if let Some(selector) = pod.labels.get(names::AAD_BINDING_LABEL) {
        let bindings: Vec<_> = index.bindings_with_selector(ns, selector).collect();
        for b in &bindings {
            one(&b.spec.azure_identity, Some(&b.name));
        }
        if bindings.is_empty() {
            problems.push(ResolveError::NoBinding {
                selector: selector.clone(),
                namespace: ns.clone(),
            });
        }
    }
    let mut seen = BTreeSet::new();
    found.retain(|r| seen.insert(r.name.clone()));
    (found, problems)
}

fn wanted(r: &ResolvedIdentity) -> Result<WantedIdentity, PodProblem> {
    let (name, namespace) = (r.name.clone(), r.identity.namespace.clone());
    let resource_id = r.identity.spec.resource_id.trim();
    if resource_id.is_empty() {
        return Err(PodProblem::NoResourceId { name, namespace });
    }
    let canonical = canonical_id(resource_id);
    if !is_user_assigned_identity_id(&canonical) {
        let resource_id = resource_id.to_owned();
        return Err(PodProblem::BadResourceId {
            name,
            namespace,
            resource_id,
        });
    }
    Ok(WantedIdentity {
        name,
        resource_id: resource_id.trim_end_matches('/').to_owned(),
        canonical,
        client_id: r.identity.spec.client_id.clone(),
    })
}

/// True for `/subscriptions/S/resourcegroups/G/providers/microsoft.managedidentity/userassignedidentities/N`
/// (canonical form): anything else would fail the whole PATCH it is in.
pub fn is_user_assigned_identity_id(canonical: &str) -> bool {
    let Some(path) = canonical.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = path.split('/').collect();
    matches!(
        segments.as_slice(),
        ["subscriptions", sub, "resourcegroups", rg, "providers", "microsoft.managedidentity", "userassignedidentities", name]
            if !sub.is_empty() && !rg.is_empty() && !name.is_empty()
    )
}
