//! The simulated world of the planner's property test: a cluster, Azure's identity blocks, the controller's records, and the checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use podid_controller::plan::{
    AssignedIdentities, ClusterView, PatchRequest, PodInfo, PodPhase, Policy, Target,
    TargetOwnership, Timestamp, desired_state, plan, record_success,
};
use podid_core::azure_ids::canonical_id;
use podid_core::model::IdentityIndex;
use podid_core::names;
use proptest::prelude::*;
use serde_json::Value;

mod fixtures;

pub use self::fixtures::*;

/// The simulated world: cluster, Azure, the controller's records, and what the checks remember.
pub struct World {
    pods: Vec<Option<PodInfo>>,
    nodes: BTreeMap<String, String>,
    index: IdentityIndex,
    opted_in: BTreeSet<String>,
    policy: Policy,
    now: Timestamp,
    actual: BTreeMap<Target, AssignedIdentities>,
    ownership: BTreeMap<Target, TargetOwnership>,
    foreign: BTreeMap<Target, BTreeSet<String>>,
    added_by_us: BTreeMap<Target, BTreeSet<String>>,
    last_needed: BTreeMap<(Target, String), Timestamp>,
}

impl World {
    pub fn new(foreign: &[Vec<usize>]) -> Self {
        let mut w = World {
            pods: Vec::new(),
            nodes: NODES
                .iter()
                .map(|n| ((*n).to_owned(), provider(n)))
                .collect(),
            index: index(),
            opted_in: ["ns1", "ns2"].iter().map(|s| (*s).to_owned()).collect(),
            policy: Policy::new(GRACE)
                .with_cluster_identity(&uid("kubelet").to_ascii_uppercase())
                .with_immutable(["CLIENT-FROZEN"]),
            now: Timestamp::from_unix_secs(1_000),
            actual: BTreeMap::new(),
            ownership: BTreeMap::new(),
            foreign: BTreeMap::new(),
            added_by_us: BTreeMap::new(),
            last_needed: BTreeMap::new(),
        };
        for (t, picks) in targets().into_iter().zip(foreign) {
            let ids: BTreeSet<String> = picks.iter().map(|i| uid(FOREIGN[*i])).collect();
            w.foreign
                .insert(t.clone(), ids.iter().map(|i| canonical_id(i)).collect());
            let system = picks.len() % 2 == 1;
            w.actual.insert(
                t,
                AssignedIdentities::new(system, ids.iter().map(String::as_str)),
            );
        }
        w
    }

    pub fn apply_op(&mut self, op: &Op) {
        let n = self.pods.len().max(1);
        match op {
            Op::Create { ns, refs, bound } => {
                let mut pod = PodInfo {
                    namespace: NAMESPACES[*ns].into(),
                    name: format!("p{}", self.pods.len()),
                    uid: format!("u{}", self.pods.len()),
                    ..PodInfo::default()
                };
                let written: Vec<&str> = refs.iter().map(|i| REFS[*i]).collect();
                pod.annotations
                    .insert(names::IDENTITY_ANNOTATION.into(), written.join(","));
                if *bound {
                    pod.labels
                        .insert(names::AAD_BINDING_LABEL.into(), "app".into());
                }
                self.pods.push(Some(pod));
            }
            Op::Schedule { pod, node } => {
                if let Some(Some(p)) = self.pods.get_mut(pod % n) {
                    p.node_name.get_or_insert_with(|| NODES[*node].to_owned());
                    p.phase = PodPhase::Running;
                }
            }
            Op::Finish { pod, failed } => {
                if let Some(Some(p)) = self.pods.get_mut(pod % n) {
                    p.phase = if *failed {
                        PodPhase::Failed
                    } else {
                        PodPhase::Succeeded
                    };
                }
            }
            Op::Delete { pod } => {
                if let Some(slot) = self.pods.get_mut(pod % n) {
                    *slot = None;
                }
            }
            Op::Advance { secs } => self.now = self.now.plus(Duration::from_secs(*secs)),
        }
    }

    /// One controller pass; requests whose bit is set in `failures` fail (and stop their target).
    pub fn reconcile(&mut self, failures: u8) -> Result<(), TestCaseError> {
        let pods: Vec<PodInfo> = self.pods.iter().flatten().cloned().collect();
        let view = ClusterView {
            pods: &pods,
            nodes: &self.nodes,
            identities: &self.index,
            opted_in: &self.opted_in,
        };
        let desired = desired_state(&view);
        for (t, needs) in &desired.targets {
            for id in needs.keys() {
                self.last_needed.insert((t.clone(), id.clone()), self.now);
            }
        }
        let plan = plan(
            &desired,
            &self.actual,
            &self.ownership,
            &self.policy,
            self.now,
        );
        for (i, (t, tp)) in plan.targets.iter().enumerate() {
            let mut owned = tp.ownership.clone();
            for (j, req) in tp.requests().iter().enumerate() {
                self.check_request(req, &desired)?;
                if failures & (1 << ((i + j) % 8)) != 0 {
                    break; // a failed operation applies nothing; the rest waits for the next pass
                }
                self.arm_patch(t, req)?;
                owned = record_success(&owned, &req.changes);
                let ours = self.added_by_us.entry(t.clone()).or_default();
                ours.extend(
                    req.changes
                        .iter()
                        .filter(|c| c.kind == podid_controller::plan::ChangeKind::Add)
                        .map(|c| c.canonical.clone()),
                );
            }
            self.ownership.insert(t.clone(), owned);
            let ours = self.added_by_us.get(t).cloned().unwrap_or_default();
            let foreign = self.foreign.get(t).cloned().unwrap_or_default();
            for id in self.ownership[t].keys() {
                prop_assert!(ours.contains(id), "{t}: owns {id} it never added");
                prop_assert!(!foreign.contains(id), "{t}: claims foreign {id}");
            }
        }
        Ok(())
    }

    fn check_request(
        &self,
        req: &PatchRequest,
        desired: &podid_controller::plan::Desired,
    ) -> Result<(), TestCaseError> {
        let t = &req.target;
        prop_assert!(req.changes.len() <= 150);
        let owned = self.ownership.get(t).cloned().unwrap_or_default();
        for c in req
            .changes
            .iter()
            .filter(|c| c.kind == podid_controller::plan::ChangeKind::Remove)
        {
            prop_assert!(
                owned.contains_key(&c.canonical),
                "{t}: removes {} it does not own",
                c.canonical
            );
            prop_assert!(
                !protected().contains(&c.canonical),
                "{t}: removes protected {}",
                c.canonical
            );
            let needed_now = desired
                .targets
                .get(t)
                .is_some_and(|m| m.contains_key(&c.canonical));
            prop_assert!(!needed_now, "{t}: removes {} a pod needs", c.canonical);
            if let Some(last) = self.last_needed.get(&(t.clone(), c.canonical.clone())) {
                prop_assert!(
                    self.now.since(*last) >= GRACE,
                    "{t}: removes {} inside the grace period",
                    c.canonical
                );
            }
        }
        Ok(())
    }

    /// ARM's reading of the body (not the planner's own `apply`), checked to agree with it.
    fn arm_patch(&mut self, t: &Target, req: &PatchRequest) -> Result<(), TestCaseError> {
        let block = self.actual.get_mut(t).expect("every target is known");
        let mut expected = block.clone();
        expected.apply(&req.changes);
        let body = req.body();
        let kind = body["identity"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        prop_assert_eq!(
            kind.contains("SystemAssigned"),
            block.system_assigned,
            "system identity kept as it was"
        );
        let mut next = AssignedIdentities::new(block.system_assigned, []);
        if kind.contains("UserAssigned") {
            let map = body["identity"]["userAssignedIdentities"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for u in block.user_assigned().values().filter(|u| {
                !map.keys()
                    .any(|k| canonical_id(k) == canonical_id(&u.resource_id))
            }) {
                next.insert(&u.resource_id, u.client_id.clone());
            }
            for (k, v) in &map {
                if *v != Value::Null {
                    next.insert(k, None);
                }
            }
            prop_assert!(
                !next.user_assigned().is_empty(),
                "type UserAssigned with nothing left"
            );
        }
        let keys = |b: &AssignedIdentities| b.user_assigned().keys().cloned().collect::<Vec<_>>();
        prop_assert_eq!(keys(&next), keys(&expected));
        *block = next;
        Ok(())
    }

    /// Final checks once every grace period is over.
    pub fn check_converged(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..3 {
            self.now = self.now.plus(GRACE + Duration::from_secs(1));
            self.reconcile(0)?;
        }
        let pods: Vec<PodInfo> = self.pods.iter().flatten().cloned().collect();
        let view = ClusterView {
            pods: &pods,
            nodes: &self.nodes,
            identities: &self.index,
            opted_in: &self.opted_in,
        };
        let desired = desired_state(&view);
        for t in targets() {
            let needed: BTreeSet<String> = desired
                .targets
                .get(&t)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let carried: BTreeSet<String> =
                self.actual[&t].user_assigned().keys().cloned().collect();
            prop_assert!(
                needed.is_subset(&carried),
                "{t}: needs {needed:?}, carries {carried:?}"
            );
            let allowed: BTreeSet<String> = self.foreign[&t].union(&protected()).cloned().collect();
            let extra: BTreeSet<String> = carried.difference(&needed).cloned().collect();
            prop_assert!(extra.is_subset(&allowed), "{t}: still carries {extra:?}");
        }
        let quiet = plan(
            &desired,
            &self.actual,
            &self.ownership,
            &self.policy,
            self.now,
        );
        prop_assert!(
            quiet.targets.values().all(|tp| tp.changes().is_empty()),
            "not converged"
        );
        Ok(())
    }
}
