//! How long pods wait for their identities: from the first desired state that put a pod on a target without the identity, to the identity there.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::plan::{AssignedIdentities, Desired, PodKey, Target};

/// Pods waiting, per (target, canonical identity id), since when.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    pods: BTreeMap<(Target, String), BTreeMap<PodKey, Instant>>,
}

impl Waiting {
    /// Follows a new desired state: pods that want an identity on their
    /// target and do not have it wait (since the first time seen); pods gone
    /// or now served stop waiting. `present` says what a target carries.
    pub(super) fn update(
        &mut self,
        desired: &Desired,
        present: impl Fn(&Target, &str) -> bool,
        now: Instant,
    ) {
        let mut next: BTreeMap<(Target, String), BTreeMap<PodKey, Instant>> = BTreeMap::new();
        for need in &desired.pods {
            let Some(target) = &need.target else { continue };
            for w in &need.identities {
                if present(target, &w.canonical) {
                    continue;
                }
                let key = (target.clone(), w.canonical.clone());
                let since = self
                    .pods
                    .get(&key)
                    .and_then(|pods| pods.get(&need.pod))
                    .copied()
                    .unwrap_or(now);
                next.entry(key).or_default().insert(need.pod.clone(), since);
            }
        }
        self.pods = next;
    }

    /// The waits that end now that `target` carries `actual`, one per pod and identity.
    pub(super) fn assigned(
        &mut self,
        target: &Target,
        actual: &AssignedIdentities,
        now: Instant,
    ) -> Vec<Duration> {
        let done: Vec<(Target, String)> = self
            .pods
            .range((target.clone(), String::new())..)
            .take_while(|((t, _), _)| t == target)
            .filter(|((_, id), _)| actual.contains(id))
            .map(|(k, _)| k.clone())
            .collect();
        done.iter()
            .filter_map(|k| self.pods.remove(k))
            .flat_map(|pods| pods.into_values())
            .map(|since| now.saturating_duration_since(since))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::{PodNeed, WantedIdentity};

    fn target(name: &str) -> Target {
        Target::Vm {
            subscription: "s".into(),
            resource_group: "g".into(),
            name: name.into(),
        }
    }

    fn need(pod: &str, t: &Target, ids: &[&str]) -> PodNeed {
        PodNeed {
            pod: PodKey {
                namespace: "ns".into(),
                name: pod.into(),
            },
            uid: pod.into(),
            node: "n".into(),
            target: Some(t.clone()),
            identities: ids
                .iter()
                .map(|i| WantedIdentity {
                    name: (*i).into(),
                    resource_id: (*i).into(),
                    canonical: (*i).into(),
                    client_id: String::new(),
                })
                .collect(),
            problems: Vec::new(),
        }
    }

    #[test]
    fn each_pod_waits_from_first_sight_until_its_identity_is_there() {
        let (vm0, vm1) = (target("vm0"), target("vm1"));
        let start = Instant::now();
        let mut w = Waiting::default();
        let desired = Desired {
            targets: BTreeMap::new(),
            pods: vec![need("a", &vm0, &["x", "y"]), need("b", &vm1, &["x"])],
        };
        w.update(&desired, |_, _| false, start);
        let later = start + Duration::from_secs(5);
        w.update(&desired, |_, _| false, later);
        let carries_x = AssignedIdentities::new(false, ["x"]);
        let waits = w.assigned(&vm0, &carries_x, start + Duration::from_secs(7));
        assert_eq!(waits, vec![Duration::from_secs(7)]);
        assert!(
            w.assigned(&vm0, &carries_x, later).is_empty(),
            "counted once"
        );
        assert_eq!(w.pods.len(), 2, "y on vm0 and x on vm1 still wait");
    }

    #[test]
    fn pods_that_find_their_identity_present_or_leave_do_not_wait() {
        let vm0 = target("vm0");
        let now = Instant::now();
        let mut w = Waiting::default();
        let desired = Desired {
            targets: BTreeMap::new(),
            pods: vec![need("a", &vm0, &["x"])],
        };
        w.update(&desired, |_, id| id == "x", now);
        assert!(w.pods.is_empty());
        w.update(&desired, |_, _| false, now);
        w.update(&Desired::default(), |_, _| false, now);
        assert!(w.pods.is_empty());
    }
}
