//! What the planner reads from the cluster: pods and nodes reduced to plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use podid_core::model::IdentityIndex;

/// A pod's `status.phase`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PodPhase {
    /// Accepted, not all containers started (or no phase reported yet).
    #[default]
    Pending,
    /// Bound to a node, containers running.
    Running,
    /// Every container ended successfully; it will not restart.
    Succeeded,
    /// Every container ended, at least one in failure; it will not restart.
    Failed,
    /// The kubelet cannot be reached.
    Unknown,
}

impl PodPhase {
    /// Reads `status.phase`; anything unrecognised counts as `Unknown` (the
    /// pod may still run, so it still needs its identities).
    pub fn parse(phase: Option<&str>) -> Self {
        match phase {
            None | Some("") | Some("Pending") => Self::Pending,
            Some("Running") => Self::Running,
            Some("Succeeded") => Self::Succeeded,
            Some("Failed") => Self::Failed,
            Some(_) => Self::Unknown,
        }
    }

    /// True once the pod can never run again (`Succeeded` or `Failed`).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// A pod, reduced to what the planner reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` (Events and conditions name the exact pod).
    pub uid: String,
    /// `spec.nodeName`, once scheduled.
    pub node_name: Option<String>,
    /// `status.phase`.
    pub phase: PodPhase,
    /// `metadata.labels` (`aadpodidbinding`).
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` (`podid.io/identity`).
    pub annotations: BTreeMap<String, String>,
}

/// Namespace and name of a pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl PodKey {
    /// The key of `pod`.
    pub fn of(pod: &PodInfo) -> Self {
        Self {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Everything the desired state is computed from.
#[derive(Clone, Copy, Debug)]
pub struct ClusterView<'a> {
    /// The pods the controller watches.
    pub pods: &'a [PodInfo],
    /// Node name → `spec.providerID` (empty when the node has none yet).
    pub nodes: &'a BTreeMap<String, String>,
    /// AzureIdentity and AzureIdentityBinding objects.
    pub identities: &'a IdentityIndex,
    /// Namespaces labelled `podid.io/inject=enabled`.
    pub opted_in: &'a BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_succeeded_and_failed_pods_are_finished() {
        for (phase, finished) in [
            (None, false),
            (Some("Pending"), false),
            (Some("Running"), false),
            (Some("Succeeded"), true),
            (Some("Failed"), true),
            (Some("Unknown"), false),
            (Some("SomethingNew"), false),
        ] {
            assert_eq!(PodPhase::parse(phase).is_finished(), finished, "{phase:?}");
        }
    }
}
