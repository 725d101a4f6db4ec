//! The in-memory index the watchers feed: pods, nodes, opted-in namespaces and identity objects, read as a [`ClusterView`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::watcher::Event;
use podid_core::model::IdentityIndex;
use podid_core::objects::IdentityObject;
use tokio::sync::watch;

use super::convert::{self, ConditionState, WatchedPod};
use super::mirror::Mirror;
use crate::plan::{ClusterView, PodInfo, PodKey};

/// One watch event of one of the watched kinds.
// Events pass one at a time from a watcher to the index: boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Update {
    /// A pod labelled `podid.io/injected=true`.
    Pod(Event<Pod>),
    /// A node.
    Node(Event<Node>),
    /// A namespace (labelled `podid.io/inject=enabled`).
    Namespace(Event<Namespace>),
    /// An AzureIdentity (the resource is the watched one).
    Identity(ApiResource, Event<DynamicObject>),
    /// An AzureIdentityBinding.
    Binding(ApiResource, Event<DynamicObject>),
}

#[derive(Debug, Default)]
struct Mirrors {
    pods: Mirror<WatchedPod>,
    nodes: Mirror<String>,
    namespaces: Mirror<()>,
    identities: Mirror<IdentityObject>,
    bindings: Mirror<IdentityObject>,
}

/// The cluster as the controller last saw it, shared by the watchers (writers) and each pass (readers).
///
/// Every change bumps a generation number readers can wait on ([`ClusterIndex::subscribe`]).
#[derive(Debug)]
pub struct ClusterIndex {
    mirrors: Mutex<Mirrors>,
    generation: watch::Sender<u64>,
}

impl Default for ClusterIndex {
    fn default() -> Self {
        Self {
            mirrors: Mutex::default(),
            generation: watch::channel(0).0,
        }
    }
}

/// An owned copy of the index at one moment, from which a [`ClusterView`] is borrowed.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// Watched pods, in (namespace, name) order.
    pub pods: Vec<PodInfo>,
    /// The current `podid.io/IdentityAssigned` condition of each pod that has one.
    pub conditions: BTreeMap<PodKey, ConditionState>,
    /// Node name → providerID.
    pub nodes: BTreeMap<String, String>,
    /// The identity objects.
    pub identities: IdentityIndex,
    /// Opted-in namespaces.
    pub opted_in: BTreeSet<String>,
}

impl ClusterSnapshot {
    /// The planner's view of this snapshot.
    pub fn view(&self) -> ClusterView<'_> {
        ClusterView {
            pods: &self.pods,
            nodes: &self.nodes,
            identities: &self.identities,
            opted_in: &self.opted_in,
        }
    }
}

impl ClusterIndex {
    /// An empty, unsynced index.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Mirrors> {
        // A panic while holding the lock leaves whole mirrors behind, never half an update.
        self.mirrors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one watch event; readers are woken when it changed what they see.
    pub fn apply(&self, update: Update) {
        let changed = {
            let mut m = self.lock();
            match update {
                Update::Pod(e) => m.pods.apply(e, convert::pod),
                Update::Node(e) => m.nodes.apply(e, convert::node_provider_id),
                Update::Namespace(e) => m.namespaces.apply(e, convert::namespace_opted_in),
                Update::Identity(ar, e) => {
                    m.identities.apply(e, |o| convert::identity_object(&ar, o))
                }
                Update::Binding(ar, e) => m.bindings.apply(e, |o| convert::identity_object(&ar, o)),
            }
        };
        if changed {
            self.generation.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// Whether every kind has been listed completely at least once.
    pub fn is_synced(&self) -> bool {
        let m = self.lock();
        m.pods.is_synced()
            && m.nodes.is_synced()
            && m.namespaces.is_synced()
            && m.identities.is_synced()
            && m.bindings.is_synced()
    }

    /// A receiver whose value changes with every visible change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> ClusterSnapshot {
        let m = self.lock();
        let mut snap = ClusterSnapshot::default();
        for w in m.pods.values() {
            if let Some(c) = &w.condition {
                snap.conditions.insert(PodKey::of(&w.info), c.clone());
            }
            snap.pods.push(w.info.clone());
        }
        snap.nodes = m
            .nodes
            .iter()
            .map(|((_, name), provider_id)| (name.clone(), provider_id.clone()))
            .collect();
        snap.opted_in = m
            .namespaces
            .iter()
            .map(|((_, name), ())| name.clone())
            .collect();
        for obj in m.identities.values().chain(m.bindings.values()) {
            match obj.clone() {
                IdentityObject::Identity(id) => snap.identities.upsert_identity(id),
                IdentityObject::Binding(b) => snap.identities.upsert_binding(b),
            }
        }
        snap
    }
}
