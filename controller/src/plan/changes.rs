//! Per-target change plans: adds, removals after the grace period, deferred removals, updated ownership.

use std::collections::{BTreeMap, BTreeSet};

use podid_core::azure_ids::{Target, canonical_id};

use super::actual::AssignedIdentities;
use super::desired::{Desired, NeededIdentity};
use super::ownership::{OwnedIdentity, TargetOwnership};
use super::policy::Policy;
use super::request::{IdentityChange, PatchRequest, build_requests};
use super::time::Timestamp;

/// A removal waiting for the grace period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeferredRemoval {
    /// The identity, as recorded.
    pub resource_id: String,
    /// When it becomes due.
    pub due: Timestamp,
}

/// What to do on one target now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetPlan {
    /// The VM or scale set.
    pub target: Target,
    /// The identity block the plan was made against; `None` when unknown,
    /// and then there are no changes: read the target first.
    pub actual: Option<AssignedIdentities>,
    /// Identities to add: needed, not there.
    pub adds: Vec<IdentityChange>,
    /// Identities to remove: added by us, unneeded for the whole grace
    /// period, not protected, still there.
    pub removals: Vec<IdentityChange>,
    /// Removals inside the grace period.
    pub deferred: Vec<DeferredRemoval>,
    /// The ownership records to store (`unneeded_since` set or cleared).
    pub ownership: TargetOwnership,
}

impl TargetPlan {
    /// True when the target's identity block must be read before anything can be decided.
    pub fn needs_read(&self) -> bool {
        self.actual.is_none()
    }

    /// Adds and removals, adds first.
    pub fn changes(&self) -> Vec<IdentityChange> {
        self.adds.iter().chain(&self.removals).cloned().collect()
    }

    /// The PATCH requests carrying the changes (none without changes or actual state).
    pub fn requests(&self) -> Vec<PatchRequest> {
        match &self.actual {
            Some(actual) => build_requests(&self.target, actual, &self.changes()),
            None => Vec::new(),
        }
    }

    /// When the earliest deferred removal becomes due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.deferred.iter().map(|d| d.due).min()
    }
}

/// Plans for every target that is desired, read, or has ownership records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// One plan per target.
    pub targets: BTreeMap<Target, TargetPlan>,
}

impl Plan {
    /// When the earliest deferred removal on any target becomes due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.targets.values().filter_map(TargetPlan::next_due).min()
    }
}

/// Plans every target. `actual` holds the targets whose identity block is
/// known; `ownership` the records of what the controller added.
pub fn plan(
    desired: &Desired,
    actual: &BTreeMap<Target, AssignedIdentities>,
    ownership: &BTreeMap<Target, TargetOwnership>,
    policy: &Policy,
    now: Timestamp,
) -> Plan {
    let targets: BTreeSet<&Target> = desired
        .targets
        .keys()
        .chain(actual.keys())
        .chain(ownership.keys())
        .collect();
    let empty_needs = BTreeMap::new();
    let empty_owned = TargetOwnership::new();
    let targets = targets
        .into_iter()
        .map(|t| {
            let needed = desired.targets.get(t).unwrap_or(&empty_needs);
            let owned = ownership.get(t).unwrap_or(&empty_owned);
            let p = plan_target(t, needed, actual.get(t), owned, policy, now);
            (t.clone(), p)
        })
        .collect();
    Plan { targets }
}

/// Plans one target.
///
/// # Guarantees
/// - Adds are needed identities that `actual` does not carry.
/// - Only identities in `owned` are ever removed, and only when no pod has
///   needed them for `policy.grace_period`, and never a protected one.
/// - An identity is owned only through [`super::record_success`]: carrying
///   an identity never makes it ours.
/// - With `actual` unknown there are no changes; ownership is still updated.
pub fn plan_target(
    target: &Target,
    needed: &BTreeMap<String, NeededIdentity>,
    actual: Option<&AssignedIdentities>,
    owned: &TargetOwnership,
    policy: &Policy,
    now: Timestamp,
) -> TargetPlan {
    let mut plan = TargetPlan {
        target: target.clone(),
        actual: actual.cloned(),
        adds: Vec::new(),
        removals: Vec::new(),
        deferred: Vec::new(),
        ownership: TargetOwnership::new(),
    };
    if let Some(actual) = actual {
        plan.adds = needed
            .iter()
            .filter(|(id, _)| !actual.contains(id))
            .map(|(_, n)| IdentityChange::add(&n.resource_id, Some(n.client_id.clone())))
            .collect();
    }
    let ctx = Review {
        needed,
        actual,
        policy,
        now,
    };
    for (key, record) in owned {
        let id = canonical_id(key);
        if let Some(kept) = ctx.review(&mut plan, &id, record) {
            plan.ownership.insert(id, kept);
        }
    }
    plan
}

/// What an owned identity is judged against.
struct Review<'a> {
    needed: &'a BTreeMap<String, NeededIdentity>,
    actual: Option<&'a AssignedIdentities>,
    policy: &'a Policy,
    now: Timestamp,
}

impl Review<'_> {
    /// Decides one owned identity: keep (needed again, or waiting), remove, or
    /// forget (gone from the target and not needed). Returns the record to keep.
    fn review(
        &self,
        plan: &mut TargetPlan,
        id: &str,
        record: &OwnedIdentity,
    ) -> Option<OwnedIdentity> {
        let (policy, now) = (self.policy, self.now);
        if self.needed.contains_key(id) {
            let mut kept = record.clone();
            kept.unneeded_since = None;
            return Some(kept);
        }
        let present = self.actual.map(|a| a.get(id));
        if present == Some(None) {
            // Someone else took it away; if it comes back, it is theirs.
            return None;
        }
        let since = record.unneeded_since.unwrap_or(now);
        let kept = OwnedIdentity {
            unneeded_since: Some(since),
            ..record.clone()
        };
        let client_ids = [record.client_id.as_deref()]
            .into_iter()
            .chain([present.flatten().and_then(|u| u.client_id.as_deref())])
            .flatten();
        if policy.protects(client_ids.chain([id])) {
            return Some(kept);
        }
        let due = since.plus(policy.grace_period);
        match present {
            Some(Some(_)) if due <= now => {
                plan.removals
                    .push(IdentityChange::remove(&record.resource_id));
            }
            _ => plan.deferred.push(DeferredRemoval {
                resource_id: record.resource_id.clone(),
                due,
            }),
        }
        Some(kept)
    }
}
