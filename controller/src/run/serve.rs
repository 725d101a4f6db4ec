//! One controller process's loop, whatever feeds it: the admin server, the cluster source, and per leadership term an executor and pod reports.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ::kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Config, RunError};
use crate::admin::{self, AdminState, GlueMetrics};
use crate::exec::{ExecConfig, Executor, Submitter};
use crate::kube::{
    ClusterIndex, ConfigMapStore, Debounce, KubePodSink, Leadership, ObservingArm, PodSink,
    StatusFeed, Trigger,
};
use crate::local::{FileStore, LogPodSink};
use crate::metrics::Metrics;
use crate::plan::{Policy, desired_state};
use crate::seams::{Arm, OwnershipStore, SystemClock};

/// Where a leadership term writes: pod reports and ownership records.
pub(super) trait Outputs: Send + Sync + 'static {
    /// Events and conditions.
    type Sink: PodSink;
    /// Ownership records.
    type Store: OwnershipStore;
    /// A sink for one term.
    fn sink(&self) -> Self::Sink;
    /// The store for one term.
    fn store(&self) -> Self::Store;
}

/// The API server: Events and pods/status, the state ConfigMap.
pub(super) struct KubeOutputs {
    pub(super) client: Client,
    pub(super) namespace: String,
    pub(super) state_configmap: String,
    pub(super) reporter: String,
}

impl Outputs for KubeOutputs {
    type Sink = KubePodSink;
    type Store = ConfigMapStore;

    fn sink(&self) -> KubePodSink {
        KubePodSink::new(self.client.clone(), self.reporter.clone())
    }

    fn store(&self) -> ConfigMapStore {
        ConfigMapStore::new(
            self.client.clone(),
            &self.namespace,
            self.state_configmap.clone(),
        )
    }
}

/// `--cluster-file`: the log, a local state file.
pub(super) struct LocalOutputs(pub(super) PathBuf);

impl Outputs for LocalOutputs {
    type Sink = LogPodSink;
    type Store = FileStore;

    fn sink(&self) -> LogPodSink {
        LogPodSink
    }

    fn store(&self) -> FileStore {
        FileStore::new(self.0.clone())
    }
}

/// What every leadership term shares.
struct Shared<A, O> {
    outputs: O,
    arm: Arc<A>,
    policy: Policy,
    exec: ExecConfig,
    index: Arc<ClusterIndex>,
    glue: GlueMetrics,
    shutdown_timeout: Duration,
}

/// What [`serve`] runs with besides the outputs and the source.
pub(super) struct Parts<A> {
    pub(super) listener: TcpListener,
    pub(super) arm: A,
    pub(super) policy: Policy,
    pub(super) metrics: Metrics,
    pub(super) leadership: Leadership,
}

/// The admin server, the cluster source feeding the index, and leadership terms, until `shutdown`.
pub(super) async fn serve<A, O, S, F>(
    cfg: &Config,
    parts: Parts<A>,
    outputs: O,
    source: S,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError>
where
    A: Arm,
    O: Outputs,
    S: FnOnce(Arc<ClusterIndex>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let Parts {
        listener,
        arm,
        policy,
        mut metrics,
        leadership,
    } = parts;
    let glue = GlueMetrics::register(&mut metrics);
    let exec = ExecConfig {
        metrics: metrics.exec.clone(),
        ..ExecConfig::default()
    };
    let addr = cfg.admin_listen;
    let index = Arc::new(ClusterIndex::new());
    let watcher = tokio::spawn(source(Arc::clone(&index)));
    let (stop_tx, stop) = watch::channel(false);
    let admin_state = AdminState {
        index: Arc::clone(&index),
        metrics: Arc::new(metrics),
    };
    let admin = tokio::spawn(admin::serve(
        listener,
        admin_state,
        until_true(stop.clone()),
    ));
    info!(%addr, "controller started");
    let shared = Shared {
        outputs,
        arm: Arc::new(arm),
        policy,
        exec,
        index,
        glue,
        shutdown_timeout: cfg.shutdown_timeout,
    };
    shared
        .until_shutdown(leadership, stop_tx, stop, shutdown)
        .await;
    watcher.abort();
    let _ = admin.await;
    info!("stopped");
    Ok(())
}

/// Completes once `rx` holds `true` (or its sender is gone).
async fn until_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

impl<A: Arm, O: Outputs> Shared<A, O> {
    /// Leads whenever elected until `shutdown`; then ends the term and releases the Lease.
    async fn until_shutdown(
        &self,
        leadership: Leadership,
        stop_tx: watch::Sender<bool>,
        stop: watch::Receiver<bool>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let terms = self.terms(leadership.subscribe(), stop);
        tokio::pin!(terms);
        tokio::select! {
            () = shutdown => info!("shutting down"),
            () = &mut terms => {}
        }
        let _ = stop_tx.send(true);
        terms.await;
        leadership.shutdown(self.shutdown_timeout).await;
    }

    /// Leads whenever elected, until stopped.
    async fn terms(&self, mut leading: watch::Receiver<bool>, stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = until_true(stop.clone()) => return,
                elected = leading.wait_for(|l| *l) => if elected.is_err() { return },
            }
            self.glue.leader.set(1);
            self.term(leading.clone(), stop.clone()).await;
            self.glue.leader.set(0);
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One leadership term: an executor and a status task, until leadership is lost or stopped.
    async fn term(&self, mut leading: watch::Receiver<bool>, stop: watch::Receiver<bool>) {
        info!("leading: starting the executor");
        let (feed, status) = StatusFeed::new(self.outputs.sink());
        let status = tokio::spawn(status);
        let store = self.outputs.store();
        let arm = ObservingArm::new(Arc::clone(&self.arm), feed.clone());
        let (executor, mut reports) = Executor::new(
            arm,
            store,
            SystemClock,
            self.policy.clone(),
            self.exec.clone(),
        );
        let submitter = executor.submitter();
        let (end_tx, end) = watch::channel(false);
        let mut exec = tokio::spawn(executor.run(until_true(end)));
        let forward = async {
            while let Some(report) = reports.recv().await {
                feed.report(report);
            }
        };
        tokio::select! {
            () = until_true(stop) => {}
            _ = leading.wait_for(|l| !*l) => warn!("lost leadership: stopping the executor"),
            () = self.passes(submitter, feed.clone()) => {}
            () = forward => {}
            _ = &mut exec => warn!("the executor ended on its own"),
        }
        let _ = end_tx.send(true);
        if tokio::time::timeout(self.shutdown_timeout, &mut exec)
            .await
            .is_err()
        {
            warn!("the executor did not stop in time; abandoning its rounds");
            exec.abort();
        }
        // A former leader must not keep telling pods anything.
        status.abort();
    }

    /// Submits a desired state once the index is synced, then after every settled burst of changes.
    async fn passes(&self, submitter: Submitter, feed: StatusFeed) {
        let mut changes = self.index.subscribe();
        while !self.index.is_synced() {
            if changes.changed().await.is_err() {
                return;
            }
        }
        let mut trigger = Trigger::new(self.index.subscribe(), Debounce::default());
        loop {
            let snapshot = self.index.snapshot();
            let desired = desired_state(&snapshot.view());
            self.glue.passes.inc();
            self.glue
                .pods
                .set(i64::try_from(desired.pods.len()).unwrap_or(i64::MAX));
            feed.pass(Arc::new(desired.clone()), snapshot.conditions);
            submitter.submit(desired);
            if !trigger.settled().await {
                return;
            }
        }
    }
}
