//! When each target's next round starts: coalescing window, backoff, deferred removals, held identities, periodic verification under a GET budget.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::ExecConfig;
use super::backoff::{after_throttle, backoff, spread};
use super::budget::{Bucket, WriteBudget};
use super::round::{Failure, Needs, RoundInput, RoundOutput};
use crate::plan::{AssignedIdentities, IdentityChange, Target, TargetOwnership, Timestamp};
use crate::seams::ArmError;

/// Why a round starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reason {
    /// Something changed (or failed and is retried, or came due).
    Work,
    /// Periodic re-read: drift (an AKS upgrade wipes scale-set identities).
    Verify,
}

/// One target's state between rounds.
#[derive(Debug)]
pub(super) struct Slot {
    needed: Arc<Needs>,
    actual: Option<AssignedIdentities>,
    ownership: TargetOwnership,
    unsaved: bool,
    unreported: Vec<IdentityChange>,
    /// Refused identities, held back until then.
    held: BTreeMap<String, Instant>,
    busy: bool,
    dirty: bool,
    /// The coalescing window: a dirty target starts no earlier.
    start_after: Instant,
    /// Backoff after a failure.
    not_before: Option<Instant>,
    failures: u32,
    /// The earliest deferred removal.
    due_at: Option<Instant>,
    verify_at: Option<Instant>,
    /// Writes left in ARM's per-resource bucket, as far as we can tell.
    bucket: Bucket,
}

impl Slot {
    fn new(now: Instant, budget: &WriteBudget) -> Self {
        Self {
            needed: Arc::default(),
            actual: None,
            ownership: TargetOwnership::new(),
            unsaved: false,
            unreported: Vec::new(),
            held: BTreeMap::new(),
            busy: false,
            dirty: false,
            start_after: now,
            not_before: None,
            failures: 0,
            due_at: None,
            verify_at: None,
            bucket: Bucket::full(budget, now),
        }
    }

    fn mark_dirty(&mut self, now: Instant, window: Duration) {
        if !self.dirty {
            self.dirty = true;
            // Changes that arrive while a round runs join the next one at once.
            self.start_after = if self.busy { now } else { now + window };
        }
    }

    /// When the next round may start, and why; `None` while one runs or nothing is due.
    /// Work (which may write) also waits for the write budget.
    fn next_start(&self, budget: Option<&WriteBudget>, now: Instant) -> Option<(Instant, Reason)> {
        if self.busy {
            return None;
        }
        let floor = |t: Instant| self.not_before.map_or(t, |nb| t.max(nb));
        let writable = budget.map_or(now, |b| self.bucket.ready_at(b, now));
        let work_floor = |t: Instant| floor(t).max(writable);
        if self.dirty {
            return Some((work_floor(self.start_after), Reason::Work));
        }
        let work = self
            .due_at
            .into_iter()
            .chain(self.held.values().copied())
            .min();
        let work = work.map(|t| (work_floor(t), Reason::Work));
        let watched = !self.needed.is_empty() || !self.ownership.is_empty();
        let verify = (self.verify_at.filter(|_| watched)).map(|t| (floor(t), Reason::Verify));
        work.into_iter().chain(verify).min_by_key(|(t, _)| *t)
    }

    /// Nothing needed, nothing recorded, nothing pending, writes budget
    /// regained: the slot can go (a new one starts with a full budget).
    fn is_idle(&self, budget: Option<&WriteBudget>, now: Instant) -> bool {
        let regained = budget.is_none_or(|b| self.bucket.is_full(b, now));
        regained
            && !self.busy
            && self.needed.is_empty()
            && self.ownership.is_empty()
            && !self.unsaved
            && self.unreported.is_empty()
    }

    fn is_pending(&self) -> bool {
        self.busy || self.dirty
    }
}

/// Every target's slot, and the GET budget of verification.
#[derive(Debug)]
pub(super) struct Slots {
    slots: BTreeMap<Target, Slot>,
    config: ExecConfig,
    /// The next verification read may start then (the budget, spaced evenly).
    next_verify: Instant,
}

impl Slots {
    /// Slots for every target with records; each is read once at start.
    pub(super) fn new(
        ownership: BTreeMap<Target, TargetOwnership>,
        config: ExecConfig,
        now: Instant,
    ) -> Self {
        let mut slots = BTreeMap::new();
        for (target, records) in ownership.into_iter().filter(|(_, r)| !r.is_empty()) {
            let mut slot = Slot::new(now, &config.write_budget.unwrap_or_default());
            slot.ownership = records;
            slot.mark_dirty(now, config.coalesce_window);
            slots.insert(target, slot);
        }
        Self {
            slots,
            config,
            next_verify: now,
        }
    }

    /// Takes the needs of a new desired state; targets whose needs changed become dirty.
    pub(super) fn set_needs(&mut self, mut targets: BTreeMap<Target, Needs>, now: Instant) {
        let window = self.config.coalesce_window;
        for (target, slot) in &mut self.slots {
            let needs = targets.remove(target).unwrap_or_default();
            if !same_needs(&slot.needed, &needs) {
                slot.needed = Arc::new(needs);
                slot.mark_dirty(now, window);
            }
        }
        let budget = self.config.write_budget.unwrap_or_default();
        for (target, needs) in targets.into_iter().filter(|(_, n)| !n.is_empty()) {
            let mut slot = Slot::new(now, &budget);
            slot.needed = Arc::new(needs);
            slot.mark_dirty(now, window);
            self.slots.insert(target, slot);
        }
        let budget = self.config.write_budget;
        self.slots.retain(|_, s| !s.is_idle(budget.as_ref(), now));
    }

    /// Whether `target` is known to carry identity `canonical`.
    pub(super) fn carries(&self, target: &Target, canonical: &str) -> bool {
        let actual = self.slots.get(target).and_then(|s| s.actual.as_ref());
        actual.is_some_and(|a| a.contains(canonical))
    }

    /// Targets whose round may start now, earliest first, at most `room`;
    /// each is marked busy and its input taken.
    pub(super) fn start(&mut self, now: Instant, room: usize) -> Vec<RoundInput> {
        let budget = self.config.write_budget;
        let mut due: Vec<(Instant, Reason, Target)> = self
            .slots
            .iter()
            .filter_map(|(t, s)| {
                let start = s.next_start(budget.as_ref(), now);
                start.map(|(at, why)| (at, why, t.clone()))
            })
            .filter(|(at, _, _)| *at <= now)
            .collect();
        due.sort_by_key(|(at, _, _)| *at);
        let mut inputs = Vec::new();
        for (_, why, target) in due {
            if inputs.len() >= room {
                break;
            }
            if why == Reason::Verify {
                if self.next_verify > now {
                    continue;
                }
                self.next_verify = now + self.verify_spacing();
            }
            if let Some(slot) = self.slots.get_mut(&target) {
                let budget = self.config.write_budget;
                let may_write = why == Reason::Work
                    || budget.is_none_or(|b| slot.bucket.ready_at(&b, now) <= now);
                inputs.push(take_input(target, slot, why, now, may_write));
            }
        }
        inputs
    }

    /// When the next round becomes startable (ignoring the concurrency cap).
    pub(super) fn next_wake(&self, now: Instant) -> Option<Instant> {
        let budget = self.config.write_budget;
        let starts = (self.slots.values()).filter_map(|s| s.next_start(budget.as_ref(), now));
        starts
            .map(|(at, why)| match why {
                Reason::Verify => at.max(self.next_verify),
                Reason::Work => at,
            })
            .map(|at| at.max(now))
            .min()
    }

    /// Takes a round's result and decides the target's next round.
    pub(super) fn finish(&mut self, target: &Target, out: RoundOutput, now: Instant) {
        let config = &self.config;
        let Some(slot) = self.slots.get_mut(target) else {
            return;
        };
        slot.busy = false;
        let state = out.state;
        (slot.actual, slot.ownership) = (state.actual, state.ownership);
        (slot.unsaved, slot.unreported) = (state.unsaved, state.unreported);
        for id in out.refused {
            slot.held.insert(id, now + config.refused_retry);
        }
        if out.read {
            slot.verify_at = Some(now + spread(config.verify_interval));
        }
        if let Some(budget) = &config.write_budget {
            slot.bucket.spend(budget, out.patches, now);
        }
        match out.outcome {
            Ok(next_due) => {
                (slot.failures, slot.not_before) = (0, None);
                slot.due_at = next_due.map(|due| now + due_in(due, out.now));
                if out.unsent {
                    // Starts again once the write budget allows.
                    slot.mark_dirty(now, Duration::ZERO);
                }
            }
            Err(failure) => {
                slot.failures += 1;
                let wait = retry_wait(config, &failure, slot.failures);
                slot.not_before = Some(now + wait);
                slot.mark_dirty(now, Duration::ZERO);
                slot.start_after = now;
            }
        }
        if slot.is_idle(config.write_budget.as_ref(), now) {
            self.slots.remove(target);
        }
    }

    /// A round that ended without an answer (it panicked): retry after backoff, reading first.
    pub(super) fn abandon(&mut self, target: &Target, now: Instant) {
        if let Some(slot) = self.slots.get_mut(target) {
            slot.busy = false;
            slot.actual = None;
            slot.failures += 1;
            let wait = backoff(
                self.config.backoff_base,
                self.config.backoff_max,
                slot.failures,
            );
            slot.not_before = Some(now + wait);
            slot.mark_dirty(now, Duration::ZERO);
        }
    }

    /// Targets with work queued or running.
    pub(super) fn pending(&self) -> usize {
        self.slots.values().filter(|s| s.is_pending()).count()
    }

    /// The actual state of `target`, when known.
    pub(super) fn actual(&self, target: &Target) -> Option<&AssignedIdentities> {
        self.slots.get(target).and_then(|s| s.actual.as_ref())
    }

    fn verify_spacing(&self) -> Duration {
        Duration::from_secs(60) / self.config.verify_per_minute.max(1)
    }
}

fn take_input(
    target: Target,
    slot: &mut Slot,
    why: Reason,
    now: Instant,
    may_write: bool,
) -> RoundInput {
    slot.held.retain(|_, until| *until > now);
    if why == Reason::Verify {
        slot.actual = None;
    }
    (slot.busy, slot.dirty) = (true, false);
    RoundInput {
        target,
        needed: slot.needed.clone(),
        actual: slot.actual.clone(),
        ownership: slot.ownership.clone(),
        unsaved: slot.unsaved,
        unreported: slot.unreported.clone(),
        held: slot.held.keys().cloned().collect::<BTreeSet<_>>(),
        may_write,
    }
}

/// How long until `due`, seen from the clock reading `now`.
fn due_in(due: Timestamp, now: Timestamp) -> Duration {
    due.since(now)
}

fn retry_wait(config: &ExecConfig, failure: &Failure, failures: u32) -> Duration {
    match failure {
        Failure::Arm(ArmError::Throttled { retry_after }) => after_throttle(*retry_after),
        _ => backoff(config.backoff_base, config.backoff_max, failures),
    }
}

/// Same identities, same ids to send: nothing to do for the target (which pods need them does not matter here).
fn same_needs(a: &Needs, b: &Needs) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, na), (kb, nb))| ka == kb && na.resource_id == nb.resource_id)
}
