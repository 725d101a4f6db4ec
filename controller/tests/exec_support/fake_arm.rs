//! An in-memory ARM for executor tests: identity blocks per target, latency, scripted failures, refused identities, and a log of every call.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podid_controller::plan::{
    AssignedIdentities, IdentityChange, IdentityType, PatchRequest, Target,
};
use podid_controller::seams::{Arm, ArmError};
use podid_core::azure_ids::canonical_id;
use tokio::time::Instant;

/// A call the executor made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Get(Target),
    Patch(Target, Vec<IdentityChange>),
}

/// Which calls a scripted failure applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    Get,
    Patch,
}

#[derive(Debug, Default)]
struct Inner {
    world: BTreeMap<Target, AssignedIdentities>,
    latency: BTreeMap<Target, Duration>,
    script: VecDeque<(On, Target, ArmError)>,
    refused: BTreeSet<String>,
    calls: Vec<(Instant, Call)>,
    patching: BTreeSet<Target>,
}

/// The fake (cheap to clone; clones share the world).
#[derive(Clone, Debug, Default)]
pub struct FakeArm(Arc<Mutex<Inner>>);

impl FakeArm {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    /// Adds a target carrying `ids` (user-assigned, as written) and maybe a system identity.
    pub fn add_target(&self, target: &Target, system: bool, ids: &[&str]) {
        let block = AssignedIdentities::new(system, ids.iter().copied());
        self.with(|i| i.world.insert(target.clone(), block));
    }

    /// What `target` carries now.
    pub fn carried(&self, target: &Target) -> BTreeSet<String> {
        self.with(|i| {
            i.world
                .get(target)
                .map(|b| b.user_assigned().keys().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Whether `target` carries `id`.
    pub fn carries(&self, target: &Target, id: &str) -> bool {
        self.carried(target).contains(&canonical_id(id))
    }

    /// Someone else (an AKS upgrade, an operator) changes `target` directly.
    pub fn meddle(&self, target: &Target, f: impl FnOnce(&mut AssignedIdentities)) {
        self.with(|i| i.world.get_mut(target).map(f));
    }

    /// Identity changes of `target` take `latency`.
    pub fn set_latency(&self, target: &Target, latency: Duration) {
        self.with(|i| i.latency.insert(target.clone(), latency));
    }

    /// The next matching call on `target` fails with `error`.
    pub fn fail_next(&self, on: On, target: &Target, error: ArmError) {
        self.with(|i| i.script.push_back((on, target.clone(), error)));
    }

    /// PATCHes adding `id` are refused (as LinkedAuthorizationFailed would be).
    pub fn refuse(&self, id: &str) {
        self.with(|i| i.refused.insert(canonical_id(id)));
    }

    /// Every call so far, with when it was made.
    pub fn calls(&self) -> Vec<(Instant, Call)> {
        self.with(|i| i.calls.clone())
    }

    /// PATCHes of `target` so far.
    pub fn patches(&self, target: &Target) -> Vec<Vec<IdentityChange>> {
        let calls = self.calls();
        calls
            .into_iter()
            .filter_map(|(_, c)| match c {
                Call::Patch(t, changes) if t == *target => Some(changes),
                _ => None,
            })
            .collect()
    }

    /// GETs of `target` so far.
    pub fn gets(&self, target: &Target) -> usize {
        let calls = self.calls();
        calls
            .iter()
            .filter(|(_, c)| matches!(c, Call::Get(t) if t == target))
            .count()
    }

    fn scripted(&self, on: On, target: &Target) -> Option<ArmError> {
        self.with(|i| {
            let at = i
                .script
                .iter()
                .position(|(o, t, _)| *o == on && t == target)?;
            i.script.remove(at).map(|(_, _, e)| e)
        })
    }
}

impl Arm for FakeArm {
    async fn get_identity(&self, target: &Target) -> Result<AssignedIdentities, ArmError> {
        self.with(|i| i.calls.push((Instant::now(), Call::Get(target.clone()))));
        if let Some(e) = self.scripted(On::Get, target) {
            return Err(e);
        }
        let block = self.with(|i| i.world.get(target).cloned());
        block.ok_or_else(|| ArmError::TargetNotFound(target.to_string()))
    }

    async fn patch_identity(
        &self,
        target: &Target,
        request: &PatchRequest,
    ) -> Result<(), ArmError> {
        let call = Call::Patch(target.clone(), request.changes.clone());
        self.with(|i| i.calls.push((Instant::now(), call)));
        if let Some(e) = self.scripted(On::Patch, target) {
            return Err(e);
        }
        let refused: Vec<String> = self.with(|i| {
            (request.changes.iter())
                .filter(|c| i.refused.contains(&c.canonical))
                .map(|c| c.canonical.clone())
                .collect()
        });
        if !refused.is_empty() {
            let message = format!("LinkedAuthorizationFailed: {}", refused.join(","));
            return Err(ArmError::IdentitiesRefused {
                identities: refused,
                message,
            });
        }
        let busy = self.with(|i| !i.patching.insert(target.clone()));
        if busy {
            return Err(ArmError::Conflict(
                "another operation is in progress".into(),
            ));
        }
        let latency = self.with(|i| i.latency.get(target).copied().unwrap_or_default());
        // The operation runs on in "Azure" even if the caller stops waiting (a restart).
        let (fake, target, request) = (self.clone(), target.clone(), request.clone());
        let operation = tokio::spawn(async move {
            tokio::time::sleep(latency).await;
            fake.with(|i| {
                i.patching.remove(&target);
                let block = i.world.get_mut(&target);
                let block = block.ok_or_else(|| ArmError::TargetNotFound(target.to_string()))?;
                apply(block, &request);
                Ok(())
            })
        });
        operation
            .await
            .unwrap_or_else(|e| Err(ArmError::Transient(e.to_string())))
    }
}

/// What ARM does with the body: the delta, or (no map) every user-assigned identity dropped.
fn apply(block: &mut AssignedIdentities, request: &PatchRequest) {
    let system = matches!(
        request.identity_type,
        IdentityType::SystemAssigned | IdentityType::SystemAssignedUserAssigned
    );
    if request.clears_user_assigned {
        *block = AssignedIdentities::new(system, []);
        return;
    }
    block.system_assigned = system;
    block.apply(&request.changes);
}

/// Grace period of the fake world's policy.
pub const GRACE: Duration = Duration::from_secs(120);

/// vm0, vm1, vm2 (carrying nothing) on nodes n-vm0…n-vm2, and identities x, y, z.
pub fn world() -> (FakeArm, super::Cluster, Vec<Target>) {
    let arm = FakeArm::default();
    let mut cluster = super::Cluster::default();
    let mut targets = Vec::new();
    for vm in ["vm0", "vm1", "vm2"] {
        let provider = super::vm_provider(vm);
        let target = super::target_of(&provider);
        arm.add_target(&target, false, &[]);
        cluster.node(&format!("n-{vm}"), &provider);
        targets.push(target);
    }
    for id in ["x", "y", "z"] {
        cluster.identity(id, &super::uid(id));
    }
    (arm, cluster, targets)
}

/// The fake world's policy: [`GRACE`], nothing protected.
pub fn policy() -> podid_controller::plan::Policy {
    podid_controller::plan::Policy::new(GRACE)
}

/// Lets `d` pass on tokio's (paused) clock.
pub async fn pass(d: Duration) {
    tokio::time::sleep(d).await;
}
