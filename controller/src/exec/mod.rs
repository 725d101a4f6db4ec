//! The executor: desired state in, ARM changes out, per target, concurrently and independently.
//!
//! # API (for the kube glue)
//!
//! ```text
//! let metrics = Metrics::new();
//! let arm = ArmClient::new(arm_config, tokens)?.with_metrics(metrics.arm.clone());
//! let config = ExecConfig { metrics: metrics.exec.clone(), ..ExecConfig::default() };
//! let (executor, mut reports) = Executor::new(arm, store, SystemClock, policy, config);
//! let submitter = executor.submitter();        // cheap to clone
//! tokio::spawn(executor.run(shutdown));         // shutdown: any Future<Output = ()>
//! submitter.submit(desired_state(&view));       // whenever the cluster view changes
//! while let Some(report) = reports.recv().await { /* Events, pod conditions */ }
//! ```
//!
//! `run` loads the ownership records first (retrying until the store
//! answers), then works until `shutdown` completes; rounds still running
//! are then dropped mid-flight (the next leader re-reads and carries on:
//! adds are claimed in the store before they are sent). Submissions are
//! coalesced: only the latest desired state counts.
//!
//! # Behaviour
//!
//! - Per target, one round at a time (`round.rs`): read the identity block if
//!   unknown (first time, after a failure, or for verification), plan with
//!   [`crate::plan::plan_target`], PATCH each request in turn.
//! - A target whose needs change starts its round after the coalescing window;
//!   changes arriving while its round runs join the next round, which starts
//!   as soon as the running one ends. A burst costs one write per target.
//! - Rounds of different targets run concurrently (up to
//!   [`ExecConfig::max_concurrent_targets`]); a slow or failing target never
//!   holds up another.
//! - Each target's writes are paced by a local mirror of ARM's per-resource
//!   bucket ([`ExecConfig::write_budget`]): under sustained churn a target
//!   waits for budget, and what arrives meanwhile joins its next PATCH.
//! - After a failure the target backs off: `Retry-After` (plus jitter) for a
//!   429, exponential backoff with jitter otherwise.
//! - Identities ARM refuses are reported ([`Report::IdentityFailed`]) and held
//!   back for [`ExecConfig::refused_retry`]; the rest proceed.
//! - Deferred removals wake their target when due; every target with needs
//!   or records is re-read about every [`ExecConfig::verify_interval`]
//!   (spread out, at most [`ExecConfig::verify_per_minute`] such reads), so
//!   identities that drifted away are added back.

mod backoff;
mod budget;
mod round;
mod schedule;
mod waiting;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tracing::warn;

pub use self::budget::WriteBudget;
use self::round::{Ctx, RoundOutput};
use self::schedule::Slots;
use self::waiting::Waiting;
use crate::metrics::ExecMetrics;
use crate::plan::{Desired, Policy, Target, TargetOwnership};
use crate::seams::{Arm, Clock, OwnershipStore, Report};

/// How the executor paces itself.
#[derive(Clone, Debug)]
pub struct ExecConfig {
    /// Changes arriving within this window of the first join one PATCH.
    pub coalesce_window: Duration,
    /// Targets whose rounds run at once.
    pub max_concurrent_targets: usize,
    /// First wait after a failure (doubling, with jitter).
    pub backoff_base: Duration,
    /// Longest wait after failures.
    pub backoff_max: Duration,
    /// How long an identity ARM refused is held back before it is tried again.
    pub refused_retry: Duration,
    /// Each target is re-read about this often (drift).
    pub verify_interval: Duration,
    /// At most this many verification reads a minute, over all targets.
    pub verify_per_minute: u32,
    /// ARM's per-resource write limit, mirrored: a target that spent it
    /// waits (its changes keep coalescing) instead of drawing 429s. `None`:
    /// write whenever there is work.
    pub write_budget: Option<WriteBudget>,
    /// Where to count.
    pub metrics: ExecMetrics,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            coalesce_window: Duration::from_millis(500),
            max_concurrent_targets: 200,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            refused_retry: Duration::from_secs(600),
            verify_interval: Duration::from_secs(600),
            verify_per_minute: 60,
            write_budget: Some(WriteBudget::default()),
            metrics: ExecMetrics::default(),
        }
    }
}

/// Hands desired states to a running executor (cheap to clone).
#[derive(Clone, Debug)]
pub struct Submitter(Arc<watch::Sender<Option<Arc<Desired>>>>);

impl Submitter {
    /// Makes `desired` the state to work towards (replacing any earlier one).
    pub fn submit(&self, desired: Desired) {
        self.0.send_replace(Some(Arc::new(desired)));
    }
}

/// The executor (see the module docs).
#[derive(Debug)]
pub struct Executor<A, S, C> {
    ctx: Arc<Ctx<A, S, C>>,
    config: ExecConfig,
    desired: watch::Receiver<Option<Arc<Desired>>>,
    submitter: Submitter,
}

impl<A: Arm, S: OwnershipStore, C: Clock> Executor<A, S, C> {
    /// An executor over `arm` and `store`, with the receiving end of its reports.
    pub fn new(
        arm: A,
        store: S,
        clock: C,
        policy: Policy,
        config: ExecConfig,
    ) -> (Self, mpsc::UnboundedReceiver<Report>) {
        let (reports, receiver) = mpsc::unbounded_channel();
        let (tx, desired) = watch::channel(None);
        let ctx = Ctx {
            arm,
            store,
            clock,
            policy,
            reports,
            metrics: config.metrics.clone(),
        };
        let executor = Self {
            ctx: Arc::new(ctx),
            config,
            desired,
            submitter: Submitter(Arc::new(tx)),
        };
        (executor, receiver)
    }

    /// Where to submit desired states.
    pub fn submitter(&self) -> Submitter {
        self.submitter.clone()
    }

    /// Works until `shutdown` completes (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let records = tokio::select! {
            () = &mut shutdown => return,
            records = self.load() => records,
        };
        let Self {
            ctx,
            config,
            mut desired,
            submitter,
        } = self;
        // Our own sender keeps the channel open: `changed` never fails.
        let _keep = submitter;
        let mut looper = Looper {
            slots: Slots::new(records, config.clone(), Instant::now()),
            waiting: Waiting::default(),
            rounds: JoinSet::new(),
            running: BTreeMap::new(),
            ctx,
            config,
        };
        desired.mark_changed();
        loop {
            looper.start_rounds();
            // At the cap, only a round ending makes room: no timer.
            let full = looper.rounds.len() >= looper.config.max_concurrent_targets.max(1);
            let wake = (!full)
                .then(|| looper.slots.next_wake(Instant::now()))
                .flatten();
            tokio::select! {
                () = &mut shutdown => break,
                Ok(()) = desired.changed() => {
                    let latest = desired.borrow_and_update().clone();
                    if let Some(d) = latest {
                        looper.take_desired(&d);
                    }
                }
                Some(done) = looper.rounds.join_next_with_id(), if !looper.rounds.is_empty() => {
                    looper.round_done(done);
                }
                () = sleep_until(wake) => {}
            }
        }
        looper.config.metrics.set_pending_targets(0);
    }

    /// The ownership records, retried with backoff until the store answers:
    /// without them nothing may be saved (saving replaces a target's records).
    async fn load(&self) -> BTreeMap<Target, TargetOwnership> {
        let mut failures = 0;
        loop {
            match self.ctx.store.load().await {
                Ok(records) => return records,
                Err(e) => {
                    failures += 1;
                    let c = &self.config;
                    let wait = backoff::backoff(c.backoff_base, c.backoff_max, failures);
                    warn!(error = %e, ?wait, "loading ownership records failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The running executor's state.
struct Looper<A, S, C> {
    slots: Slots,
    waiting: Waiting,
    rounds: JoinSet<(Target, RoundOutput)>,
    running: BTreeMap<Id, Target>,
    ctx: Arc<Ctx<A, S, C>>,
    config: ExecConfig,
}

impl<A: Arm, S: OwnershipStore, C: Clock> Looper<A, S, C> {
    fn start_rounds(&mut self) {
        let room = self
            .config
            .max_concurrent_targets
            .max(1)
            .saturating_sub(self.rounds.len());
        for input in self.slots.start(Instant::now(), room) {
            let ctx = self.ctx.clone();
            let target = input.target.clone();
            let handle = self.rounds.spawn(async move {
                let out = round::run(&ctx, input).await;
                (out.state.target.clone(), out)
            });
            self.running.insert(handle.id(), target);
        }
        self.config
            .metrics
            .set_pending_targets(self.slots.pending());
    }

    fn take_desired(&mut self, desired: &Desired) {
        let now = Instant::now();
        self.slots.set_needs(desired.targets.clone(), now);
        let slots = &self.slots;
        self.waiting
            .update(desired, |t, id| slots.carries(t, id), now);
    }

    fn round_done(&mut self, done: Result<(Id, (Target, RoundOutput)), tokio::task::JoinError>) {
        let now = Instant::now();
        match done {
            Ok((id, (target, out))) => {
                self.running.remove(&id);
                self.slots.finish(&target, out, now);
                if let Some(actual) = self.slots.actual(&target) {
                    for waited in self.waiting.assigned(&target, actual, now) {
                        self.config.metrics.assigned_after(waited);
                    }
                }
            }
            Err(e) => {
                if let Some(target) = self.running.remove(&e.id()) {
                    warn!(%target, error = %e, "round ended abnormally; retrying");
                    self.slots.abandon(&target, now);
                }
            }
        }
    }
}
