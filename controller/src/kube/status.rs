//! What to tell each pod (pure): its `podid.io/IdentityAssigned` condition and the Events, from the desired state and the executor's reports.

use std::collections::{BTreeMap, BTreeSet};

use podid_core::azure_ids::canonical_id;

use super::convert::ConditionState;
use crate::plan::{ChangeKind, Desired, PodKey, PodNeed, PodProblem, Target};
use crate::seams::Report;

/// Event reason when an identity is on the pod's VM or scale set.
pub const REASON_ASSIGNED: &str = "IdentityAssigned";
/// Event reason when it could not be put there.
pub const REASON_FAILED: &str = "IdentityAssignmentFailed";

/// Condition reasons.
pub mod reasons {
    /// Every identity the pod uses is on its VM or scale set.
    pub const ASSIGNED: &str = "IdentitiesAssigned";
    /// ARM refused some identity.
    pub const FAILED: &str = "AssignmentFailed";
    /// The VM or scale set cannot be changed for now; retried.
    pub const TARGET_UNAVAILABLE: &str = "TargetUnavailable";
    /// Not there yet, no failure known.
    pub const PENDING: &str = "AssignmentPending";
}

/// What the controller learned about targets: what they carry and what failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    carried: BTreeMap<Target, BTreeSet<String>>,
    failed: BTreeMap<Target, BTreeMap<String, String>>,
    target_failed: BTreeMap<Target, String>,
}

impl Observed {
    /// Takes in one executor report.
    pub fn record(&mut self, report: &Report) {
        match report {
            Report::Applied { target, changes } => {
                let carried = self.carried.entry(target.clone()).or_default();
                let failed = self.failed.entry(target.clone()).or_default();
                for c in changes {
                    match c.kind {
                        ChangeKind::Add => {
                            carried.insert(c.canonical.clone());
                            failed.remove(&c.canonical);
                        }
                        ChangeKind::Remove => {
                            carried.remove(&c.canonical);
                        }
                    }
                }
                self.target_failed.remove(target);
            }
            Report::IdentityFailed {
                target,
                identities,
                reason,
            } => {
                let failed = self.failed.entry(target.clone()).or_default();
                for id in identities {
                    failed.insert(canonical_id(id), reason.clone());
                }
            }
            Report::TargetFailed { target, reason } => {
                self.target_failed.insert(target.clone(), reason.clone());
            }
        }
    }

    /// Takes in a target's identity block as read from ARM (canonical or not).
    pub fn read<'a>(&mut self, target: &Target, ids: impl IntoIterator<Item = &'a str>) {
        let carried: BTreeSet<String> = ids.into_iter().map(canonical_id).collect();
        if let Some(failed) = self.failed.get_mut(target) {
            failed.retain(|id, _| !carried.contains(id));
        }
        self.carried.insert(target.clone(), carried);
    }

    /// Forgets targets no pod is on any more.
    pub fn retain_targets(&mut self, keep: &BTreeSet<Target>) {
        self.carried.retain(|t, _| keep.contains(t));
        self.failed.retain(|t, _| keep.contains(t));
        self.target_failed.retain(|t, _| keep.contains(t));
    }
}

/// One Event to write about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    /// `true` for `Warning`, `false` for `Normal`.
    pub warning: bool,
    /// [`REASON_ASSIGNED`] or [`REASON_FAILED`].
    pub reason: &'static str,
    /// For a person: which identity, which VM or scale set, why.
    pub note: String,
}

/// How a pod stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The condition it should carry; `None`: nothing to say (no identity to assign).
    pub condition: Option<ConditionState>,
    /// Events for what happened, each with a key that says whether it was already told.
    pub events: Vec<(String, PodEvent)>,
}

fn condition(status: bool, reason: &str, message: String) -> ConditionState {
    ConditionState {
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
    }
}

/// Judges one pod against what is known.
///
/// A node the controller has not seen yet is not a failure: its watch event
/// is on its way, and the pod is pending meanwhile.
pub fn judge(need: &PodNeed, observed: &Observed) -> Verdict {
    let mut events = Vec::new();
    let mut failures = Vec::new();
    let mut waiting = None;
    for p in &need.problems {
        if matches!(p, PodProblem::UnknownNode { .. }) {
            waiting = Some(p.to_string());
            continue;
        }
        failures.push(p.to_string());
        let key = format!("problem:{}", problem_key(p));
        events.push((key, failed_event(p.to_string())));
    }
    let Some(target) = need.target.as_ref() else {
        let condition = if !failures.is_empty() {
            Some(condition(false, reasons::FAILED, failures.join("; ")))
        } else {
            waiting.map(|w| condition(false, reasons::PENDING, w))
        };
        return Verdict { condition, events };
    };
    let pending = judge_identities(need, target, observed, &mut events, &mut failures);
    let condition = if !failures.is_empty() {
        Some(condition(false, reasons::FAILED, failures.join("; ")))
    } else if need.identities.is_empty() {
        None
    } else if pending.is_empty() {
        let names: Vec<&str> = need.identities.iter().map(|w| w.name.as_str()).collect();
        let message = format!("{} assigned to {target}", names.join(", "));
        Some(condition(true, reasons::ASSIGNED, message))
    } else if let Some(reason) = observed.target_failed.get(target) {
        let text = format!("{target} cannot be changed for now (retrying): {reason}");
        events.push((format!("target:{reason}"), failed_event(text.clone())));
        Some(condition(false, reasons::TARGET_UNAVAILABLE, text))
    } else {
        let message = format!("waiting for {} on {target}", pending.join(", "));
        Some(condition(false, reasons::PENDING, message))
    };
    Verdict { condition, events }
}

/// Sorts the pod's identities into assigned (an event), failed (an event and
/// a failure) and pending (returned, by name).
fn judge_identities<'a>(
    need: &'a PodNeed,
    target: &Target,
    observed: &Observed,
    events: &mut Vec<(String, PodEvent)>,
    failures: &mut Vec<String>,
) -> Vec<&'a str> {
    let carried = observed.carried.get(target);
    let failed = observed.failed.get(target);
    let mut pending = Vec::new();
    for w in &need.identities {
        let what = format!("AzureIdentity {:?} ({})", w.name, w.resource_id);
        if carried.is_some_and(|c| c.contains(&w.canonical)) {
            let note = format!("{what} is assigned to {target}");
            let event = PodEvent {
                warning: false,
                reason: REASON_ASSIGNED,
                note,
            };
            events.push((format!("assigned:{}", w.canonical), event));
        } else if let Some(reason) = failed.and_then(|f| f.get(&w.canonical)) {
            let text = format!("{what} could not be assigned to {target}: {reason}");
            let key = format!("failed:{}:{reason}", w.canonical);
            events.push((key, failed_event(text.clone())));
            failures.push(text);
        } else {
            pending.push(w.name.as_str());
        }
    }
    pending
}

fn failed_event(note: String) -> PodEvent {
    PodEvent {
        warning: true,
        reason: REASON_FAILED,
        note,
    }
}

fn problem_key(p: &PodProblem) -> String {
    format!("{}:{p}", p.kind())
}

/// One pod's writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodWrite {
    /// The pod.
    pub pod: PodKey,
    /// Its uid (a precondition: never write on a namesake).
    pub uid: String,
    /// The condition to set, when it differs from what the pod carries.
    pub condition: Option<ConditionState>,
    /// Whether `condition` changes the status (and so `lastTransitionTime`).
    pub transition: bool,
    /// Events not told before.
    pub events: Vec<PodEvent>,
}

/// What was already told to each pod, so that nothing is said twice.
#[derive(Clone, Debug, Default)]
pub struct StatusBook {
    told: BTreeMap<String, BTreeSet<String>>,
    written: BTreeMap<String, ConditionState>,
}

impl StatusBook {
    /// Forgets that `uid`'s condition was written (the write failed): the next round writes it again.
    pub fn unwritten(&mut self, uid: &str) {
        self.written.remove(uid);
    }

    /// The writes that bring every pod of `desired` up to date.
    ///
    /// # Guarantees
    /// - A condition is written only when it differs from the pod's current
    ///   one (`current`, from the watch) and from the last one written.
    /// - A pending condition is never the first one a pod gets (no write
    ///   that the next pass would overturn), but replaces an outdated one.
    /// - Each event is produced once per pod; after a restart, pods whose
    ///   condition already says assigned get no repeated `IdentityAssigned`.
    pub fn writes(
        &mut self,
        desired: &Desired,
        current: &BTreeMap<PodKey, ConditionState>,
        observed: &Observed,
    ) -> Vec<PodWrite> {
        let live: BTreeSet<&str> = desired.pods.iter().map(|p| p.uid.as_str()).collect();
        self.told.retain(|uid, _| live.contains(uid.as_str()));
        self.written.retain(|uid, _| live.contains(uid.as_str()));
        desired
            .pods
            .iter()
            .filter_map(|need| self.write_for(need, current.get(&need.pod), observed))
            .collect()
    }

    fn write_for(
        &mut self,
        need: &PodNeed,
        current: Option<&ConditionState>,
        observed: &Observed,
    ) -> Option<PodWrite> {
        let verdict = judge(need, observed);
        if current.is_some() && self.written.get(&need.uid) == current {
            // The watch caught up with the last write.
            self.written.remove(&need.uid);
        }
        let told = self.told.entry(need.uid.clone()).or_insert_with(|| {
            // First sight since start: what the pod's condition already says was told.
            match current {
                Some(c) if c.status == "True" => verdict
                    .events
                    .iter()
                    .filter(|(_, e)| !e.warning)
                    .map(|(k, _)| k.clone())
                    .collect(),
                _ => BTreeSet::new(),
            }
        });
        let events: Vec<PodEvent> = verdict
            .events
            .into_iter()
            .filter(|(key, _)| told.insert(key.clone()))
            .map(|(_, e)| e)
            .collect();
        let condition = verdict.condition.filter(|c| {
            let first_and_pending = current.is_none() && c.reason == reasons::PENDING;
            current != Some(c) && self.written.get(&need.uid) != Some(c) && !first_and_pending
        });
        let transition = condition
            .as_ref()
            .is_some_and(|c| current.is_none_or(|cur| cur.status != c.status));
        if let Some(c) = &condition {
            self.written.insert(need.uid.clone(), c.clone());
        }
        (condition.is_some() || !events.is_empty()).then(|| PodWrite {
            pod: need.pod.clone(),
            uid: need.uid.clone(),
            condition,
            transition,
            events,
        })
    }
}
