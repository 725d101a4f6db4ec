//! One round on one target: read if needed, plan, record, PATCH each request in turn, record and report each success.
//!
//! # Guarantees
//! - Adds are claimed in the ownership store before their PATCH is sent
//!   (so a controller stopped mid-operation does not forget them) and the
//!   claim is withdrawn when ARM certainly applied nothing.
//! - After a PATCH succeeds, [`record_success`] is saved before the change
//!   is reported; a save that fails is retried before anything else.
//! - Identities ARM refuses are held back and reported; the rest proceed.
//! - A request that would clear every user-assigned identity is sent only
//!   right after a fresh read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::metrics::ExecMetrics;
use crate::plan::{
    AssignedIdentities, ChangeKind, IdentityChange, NeededIdentity, PatchRequest, Policy, Target,
    TargetOwnership, TargetPlan, Timestamp, plan_target, record_success,
};
use crate::seams::{Arm, ArmError, Clock, OwnershipStore, Report, StoreError};

/// Reads and PATCHes one round may make before it yields (refusals re-plan; this bounds them).
const MAX_STEPS: usize = 32;

/// Needed identities of one target: canonical id → need.
pub(super) type Needs = BTreeMap<String, NeededIdentity>;

/// What every round shares.
#[derive(Debug)]
pub(super) struct Ctx<A, S, C> {
    pub arm: A,
    pub store: S,
    pub clock: C,
    pub policy: Policy,
    pub reports: mpsc::UnboundedSender<Report>,
    pub metrics: ExecMetrics,
}

impl<A, S, C> Ctx<A, S, C> {
    pub(super) fn report(&self, report: Report) {
        let kind = match &report {
            Report::Applied { .. } => "applied",
            Report::IdentityFailed { .. } => "identity_failed",
            Report::TargetFailed { .. } => "target_failed",
        };
        self.metrics.report(kind);
        // Nobody listening is not our failure.
        let _ = self.reports.send(report);
    }
}

/// A target's state as a round starts.
#[derive(Clone, Debug)]
pub(super) struct RoundInput {
    pub target: Target,
    pub needed: Arc<Needs>,
    pub actual: Option<AssignedIdentities>,
    pub ownership: TargetOwnership,
    /// The store may hold older records than `ownership`.
    pub unsaved: bool,
    /// Applied, recorded in memory, not reported yet.
    pub unreported: Vec<IdentityChange>,
    /// Identities held back after a refusal.
    pub held: BTreeSet<String>,
    /// The write budget allows a PATCH (verification rounds may start without it).
    pub may_write: bool,
}

/// Why a round stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// ARM said no, or did not answer.
    Arm(ArmError),
    /// The ownership store did not load or save.
    Store(StoreError),
    /// The round kept re-planning.
    TooManySteps,
}

/// A target's state as a round ends.
#[derive(Debug)]
pub(super) struct RoundOutput {
    pub state: RoundInput,
    /// Identities ARM refused in this round (canonical ids).
    pub refused: Vec<String>,
    /// The target was read in this round.
    pub read: bool,
    /// PATCHes sent (each draws on ARM's write budget, whatever the answer).
    pub patches: u32,
    /// Changes are due but were not sent: no write budget.
    pub unsent: bool,
    /// Done (with the earliest deferred removal), or failed.
    pub outcome: Result<Option<Timestamp>, Failure>,
    /// The clock as the round ended (deferred removals are due in its terms).
    pub now: Timestamp,
}

/// Runs one round.
pub(super) async fn run<A: Arm, S: OwnershipStore, C: Clock>(
    ctx: &Ctx<A, S, C>,
    state: RoundInput,
) -> RoundOutput {
    let mut round = Round {
        ctx,
        state,
        refused: Vec::new(),
        fresh: false,
        read: false,
        patches: 0,
        unsent: false,
    };
    let outcome = round.steps().await;
    if let Err(failure) = &outcome {
        let target = round.state.target.clone();
        warn!(%target, ?failure, "target not changed for now; retrying later");
        ctx.report(Report::TargetFailed {
            target,
            reason: describe(failure),
        });
    }
    RoundOutput {
        state: round.state,
        refused: round.refused,
        read: round.read,
        patches: round.patches,
        unsent: round.unsent,
        outcome,
        now: ctx.clock.now(),
    }
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Arm(e) => e.to_string(),
        Failure::Store(e) => e.to_string(),
        Failure::TooManySteps => "too many refusals in one round".into(),
    }
}

/// What happened to one request.
enum Sent {
    /// Applied, recorded, reported.
    Applied,
    /// Stopped before or after sending: read and plan again.
    Replan,
}

struct Round<'a, A, S, C> {
    ctx: &'a Ctx<A, S, C>,
    state: RoundInput,
    refused: Vec<String>,
    /// `actual` was read and nothing has been sent since.
    fresh: bool,
    read: bool,
    patches: u32,
    unsent: bool,
}

impl<A: Arm, S: OwnershipStore, C: Clock> Round<'_, A, S, C> {
    async fn steps(&mut self) -> Result<Option<Timestamp>, Failure> {
        self.flush().await?;
        for _ in 0..MAX_STEPS {
            let Some(actual) = self.state.actual.clone() else {
                if self.read_target().await? {
                    continue;
                }
                return Ok(None);
            };
            let plan = self.plan(&actual);
            self.record(plan.ownership.clone()).await?;
            let requests = plan.requests();
            if requests.is_empty() || !self.state.may_write {
                self.unsent = !requests.is_empty();
                return Ok(plan.next_due());
            }
            for request in &requests {
                if let Sent::Replan = self.send(request).await? {
                    break;
                }
            }
        }
        Err(Failure::TooManySteps)
    }

    /// Saves records the store may lack and reports what they recorded.
    async fn flush(&mut self) -> Result<(), Failure> {
        if self.state.unsaved {
            self.save().await?;
        }
        self.report_applied();
        Ok(())
    }

    /// GETs the target; `false` when it is gone and nothing is needed there
    /// (its records are dropped: the identities went with it).
    async fn read_target(&mut self) -> Result<bool, Failure> {
        match self.ctx.arm.get_identity(&self.state.target).await {
            Ok(actual) => {
                self.state.actual = Some(actual);
                (self.fresh, self.read) = (true, true);
                Ok(true)
            }
            Err(ArmError::TargetNotFound(why)) if self.state.needed.is_empty() => {
                info!(target = %self.state.target, %why, "target gone; forgetting its records");
                self.record(TargetOwnership::new()).await?;
                Ok(false)
            }
            Err(e) => Err(Failure::Arm(e)),
        }
    }

    fn plan(&self, actual: &AssignedIdentities) -> TargetPlan {
        let s = &self.state;
        let now = self.ctx.clock.now();
        let mut plan = plan_target(
            &s.target,
            &s.needed,
            Some(actual),
            &s.ownership,
            &self.ctx.policy,
            now,
        );
        plan.adds.retain(|c| !s.held.contains(&c.canonical));
        plan.removals.retain(|c| !s.held.contains(&c.canonical));
        plan
    }

    /// Makes `records` the target's ownership, saving it when it differs from the store.
    async fn record(&mut self, records: TargetOwnership) -> Result<(), Failure> {
        if records == self.state.ownership && !self.state.unsaved {
            return Ok(());
        }
        self.state.ownership = records;
        self.state.unsaved = true;
        self.save().await
    }

    async fn save(&mut self) -> Result<(), Failure> {
        let s = &mut self.state;
        self.ctx
            .store
            .save(&s.target, &s.ownership)
            .await
            .map_err(Failure::Store)?;
        s.unsaved = false;
        Ok(())
    }

    fn report_applied(&mut self) {
        if self.state.unsaved || self.state.unreported.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.state.unreported);
        let target = self.state.target.clone();
        info!(%target, changes = changes.len(), "identities changed");
        self.ctx.report(Report::Applied { target, changes });
    }

    /// Sends one request: claim, PATCH, then record and report, or withdraw the claim.
    async fn send(&mut self, request: &PatchRequest) -> Result<Sent, Failure> {
        if request.clears_user_assigned && !self.fresh {
            // ARM drops every user-assigned identity with it: look again first.
            self.state.actual = None;
            return Ok(Sent::Replan);
        }
        let adds: Vec<IdentityChange> = (request.changes.iter())
            .filter(|c| c.kind == ChangeKind::Add)
            .cloned()
            .collect();
        let before = self.state.ownership.clone();
        if !adds.is_empty() {
            self.record(record_success(&before, &adds)).await?;
        }
        self.fresh = false;
        self.patches += 1;
        debug!(target = %self.state.target, changes = request.changes.len(), "PATCH");
        match self
            .ctx
            .arm
            .patch_identity(&self.state.target, request)
            .await
        {
            Ok(()) => self.applied(request).await.map(|()| Sent::Applied),
            Err(e) => {
                if applied_nothing(&e) && !adds.is_empty() {
                    // A save that fails here leaves the claim; the next read settles it.
                    let _ = self.record(before).await;
                }
                self.failed(request, e)
            }
        }
    }

    async fn applied(&mut self, request: &PatchRequest) -> Result<(), Failure> {
        if let Some(actual) = &mut self.state.actual {
            actual.apply(&request.changes);
        }
        self.state
            .unreported
            .extend(request.changes.iter().cloned());
        self.record(record_success(&self.state.ownership, &request.changes))
            .await?;
        self.report_applied();
        Ok(())
    }

    /// Refusals of identities in `request` hold them back and re-plan; anything else ends the round.
    fn failed(&mut self, request: &PatchRequest, e: ArmError) -> Result<Sent, Failure> {
        if !matches!(e, ArmError::Throttled { .. }) {
            // ARM may have changed (or someone else may have): read before deciding again.
            self.state.actual = None;
        }
        let ArmError::IdentitiesRefused {
            identities,
            message,
        } = &e
        else {
            return Err(Failure::Arm(e));
        };
        let ours: Vec<String> = (request.changes.iter())
            .map(|c| c.canonical.clone())
            .filter(|c| identities.contains(c))
            .collect();
        if ours.is_empty() {
            return Err(Failure::Arm(e));
        }
        let target = self.state.target.clone();
        warn!(%target, identities = ?ours, %message, "ARM refused identities; the others proceed");
        self.state.held.extend(ours.iter().cloned());
        self.refused.extend(ours.iter().cloned());
        self.ctx.report(Report::IdentityFailed {
            target,
            identities: ours,
            reason: message.clone(),
        });
        Ok(Sent::Replan)
    }
}

/// True when ARM certainly applied nothing of the request.
fn applied_nothing(e: &ArmError) -> bool {
    !matches!(e, ArmError::Transient(_) | ArmError::Unexpected(_))
}
