//! The task that tells pods how they stand: takes passes, executor reports and ARM reads, writes conditions and Events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::convert::ConditionState;
use super::pods::PodSink;
use super::status::{Observed, StatusBook};
use crate::plan::{AssignedIdentities, Desired, PatchRequest, PodKey, Target};
use crate::seams::{Arm, ArmError, Report};

/// One input of the status task.
#[derive(Debug)]
enum Input {
    Pass(Arc<Desired>, BTreeMap<PodKey, ConditionState>),
    Report(Report),
    Read(Target, Vec<String>),
}

/// Feeds the status task; cheap to clone. Sending never blocks.
#[derive(Clone, Debug)]
pub struct StatusFeed {
    tx: mpsc::UnboundedSender<Input>,
}

impl StatusFeed {
    /// A feed and the task that consumes it (spawn it); the task ends when every feed is dropped.
    pub fn new<S: PodSink>(sink: S) -> (Self, impl Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, run(sink, rx))
    }

    /// A new desired state and the pods' current conditions (after every pass).
    pub fn pass(&self, desired: Arc<Desired>, conditions: BTreeMap<PodKey, ConditionState>) {
        let _ = self.tx.send(Input::Pass(desired, conditions));
    }

    /// An executor report.
    pub fn report(&self, report: Report) {
        let _ = self.tx.send(Input::Report(report));
    }

    /// A target's identity block as read from ARM.
    pub fn read(&self, target: &Target, identities: &AssignedIdentities) {
        let ids = identities.user_assigned().keys().cloned().collect();
        let _ = self.tx.send(Input::Read(target.clone(), ids));
    }
}

#[derive(Default)]
struct State {
    desired: Option<Arc<Desired>>,
    conditions: BTreeMap<PodKey, ConditionState>,
    observed: Observed,
    book: StatusBook,
}

impl State {
    fn take(&mut self, input: Input) {
        match input {
            Input::Pass(desired, conditions) => {
                let targets: BTreeSet<Target> = desired
                    .pods
                    .iter()
                    .filter_map(|p| p.target.clone())
                    .collect();
                self.observed.retain_targets(&targets);
                self.desired = Some(desired);
                self.conditions = conditions;
            }
            Input::Report(report) => self.observed.record(&report),
            Input::Read(target, ids) => self.observed.read(&target, ids.iter().map(String::as_str)),
        }
    }
}

/// Takes every queued input, then writes what changed; until the feeds are gone.
async fn run<S: PodSink>(sink: S, mut rx: mpsc::UnboundedReceiver<Input>) {
    let mut state = State::default();
    while let Some(input) = rx.recv().await {
        state.take(input);
        while let Ok(more) = rx.try_recv() {
            state.take(more);
        }
        let Some(desired) = state.desired.clone() else {
            continue;
        };
        let writes = state
            .book
            .writes(&desired, &state.conditions, &state.observed);
        for write in writes {
            match sink.write(&write).await {
                Ok(()) => {
                    debug!(pod = %write.pod, condition = ?write.condition, events = write.events.len(), "pod told")
                }
                Err(e) if e.pod_is_gone() => debug!(pod = %write.pod, error = %e, "pod gone"),
                Err(e) => {
                    warn!(pod = %write.pod, error = %e, kind = e.kind(), "cannot tell the pod; retried on the next change");
                    state.book.unwritten(&write.uid);
                }
            }
        }
    }
}

/// An [`Arm`] that also tells the status task what each target carries when it is read.
#[derive(Debug)]
pub struct ObservingArm<A> {
    inner: Arc<A>,
    feed: StatusFeed,
}

impl<A: Arm> ObservingArm<A> {
    /// Wraps `inner` (shared: one client serves every leadership term).
    pub fn new(inner: Arc<A>, feed: StatusFeed) -> Self {
        Self { inner, feed }
    }
}

impl<A: Arm> Arm for ObservingArm<A> {
    async fn get_identity(&self, target: &Target) -> Result<AssignedIdentities, ArmError> {
        let read = self.inner.get_identity(target).await;
        if let Ok(identities) = &read {
            self.feed.read(target, identities);
        }
        read
    }

    async fn patch_identity(
        &self,
        target: &Target,
        request: &PatchRequest,
    ) -> Result<(), ArmError> {
        self.inner.patch_identity(target, request).await
    }
}
