//! What the controller must never do and how long it waits: grace period, immutable identities, the cluster's own identity.

use std::collections::BTreeSet;
use std::time::Duration;

/// Removal policy.
///
/// Protected identities are given as resource ids or client ids (aad-pod-
/// identity's `immutableUserMSIs` were client ids; `azure.json` names the
/// kubelet identity by client id) and compared case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// How long an identity no pod needs stays before it is removed.
    pub grace_period: Duration,
    immutable: BTreeSet<String>,
    cluster: BTreeSet<String>,
}

impl Policy {
    /// A policy with `grace_period` and nothing protected.
    pub fn new(grace_period: Duration) -> Self {
        Self {
            grace_period,
            ..Self::default()
        }
    }

    /// Adds identities (resource ids or client ids) listed as immutable at install.
    pub fn with_immutable<'a>(mut self, ids: impl IntoIterator<Item = &'a str>) -> Self {
        self.immutable.extend(ids.into_iter().filter_map(normalize));
        self
    }

    /// Adds the cluster's own (kubelet) identity, by resource id or client id.
    pub fn with_cluster_identity(mut self, id: &str) -> Self {
        self.cluster.extend(normalize(id));
        self
    }

    /// Whether an identity known by these ids (canonical resource id, client
    /// ids from any source) must never be removed.
    pub fn protects<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> bool {
        ids.into_iter()
            .filter_map(normalize)
            .any(|id| self.immutable.contains(&id) || self.cluster.contains(&id))
    }
}

fn normalize(id: &str) -> Option<String> {
    let id = id.trim().trim_end_matches('/');
    (!id.is_empty()).then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_matches_resource_or_client_ids_in_any_case() {
        let p = Policy::new(Duration::ZERO)
            .with_immutable(["/Subscriptions/S/x/ID-A/", "AAAA-bbbb"])
            .with_cluster_identity("/subscriptions/s/KUBELET");
        assert!(p.protects(["/subscriptions/s/x/id-a"]));
        assert!(p.protects(["/other", "aaaa-BBBB"]));
        assert!(p.protects(["/SUBSCRIPTIONS/S/kubelet"]));
        assert!(!p.protects(["/subscriptions/s/x/id-b", ""]));
    }

    #[test]
    fn empty_ids_protect_nothing() {
        let p = Policy::new(Duration::ZERO)
            .with_immutable([" ", ""])
            .with_cluster_identity("");
        assert!(!p.protects([""]));
    }
}
