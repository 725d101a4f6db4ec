//! Shared by the executor tests: a cluster to compute desired states from, an in-memory ownership store, a clock on tokio's time, and running executors.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod emulated;
pub mod fake_arm;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podid_controller::exec::{ExecConfig, Executor, Submitter};
use podid_controller::plan::{
    ClusterView, Desired, PodInfo, PodPhase, Policy, Target, TargetOwnership, Timestamp,
    desired_state,
};
use podid_controller::seams::{Arm, Clock, OwnershipStore, Report, StoreError};
use podid_core::model::{AzureIdentity, AzureIdentitySpec, IdentityIndex, IdentityType};
use podid_core::names;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The identity id of `name` in subscription `sub`, resource group `rg`.
pub fn uid(name: &str) -> String {
    format!(
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

/// A standalone VM's providerID.
pub fn vm_provider(name: &str) -> String {
    format!(
        "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{name}"
    )
}

/// The target of a providerID.
pub fn target_of(provider: &str) -> Target {
    Target::from_provider_id(provider).unwrap()
}

/// Pods, nodes and identity objects; the desired state is computed from them by the real planner.
#[derive(Debug, Default)]
pub struct Cluster {
    pods: BTreeMap<String, PodInfo>,
    nodes: BTreeMap<String, String>,
    index: IdentityIndex,
}

impl Cluster {
    /// An AzureIdentity `name` (namespace `ns`) for identity id `resource_id`.
    pub fn identity(&mut self, name: &str, resource_id: &str) -> &mut Self {
        self.index.upsert_identity(AzureIdentity {
            name: name.into(),
            namespace: "ns".into(),
            spec: AzureIdentitySpec {
                kind: IdentityType::UserAssignedMsi,
                resource_id: resource_id.into(),
                client_id: format!("client-{name}"),
                tenant_id: String::new(),
                client_password: None,
                ad_endpoint: String::new(),
                ad_resource_id: String::new(),
            },
            credential: Default::default(),
        });
        self
    }

    /// A node with `provider_id`.
    pub fn node(&mut self, name: &str, provider_id: &str) -> &mut Self {
        self.nodes.insert(name.into(), provider_id.into());
        self
    }

    /// A running pod on `node` wanting `identities` (AzureIdentity names).
    pub fn pod(&mut self, name: &str, node: &str, identities: &[&str]) -> &mut Self {
        let annotations =
            BTreeMap::from([(names::IDENTITY_ANNOTATION.to_owned(), identities.join(","))]);
        let pod = PodInfo {
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            node_name: Some(node.into()),
            phase: PodPhase::Running,
            labels: BTreeMap::new(),
            annotations,
        };
        self.pods.insert(name.into(), pod);
        self
    }

    /// Deletes pod `name`.
    pub fn delete(&mut self, name: &str) -> &mut Self {
        self.pods.remove(name);
        self
    }

    /// Deletes every pod.
    pub fn delete_all(&mut self) -> &mut Self {
        self.pods.clear();
        self
    }

    /// The desired state, as the kube glue would compute it.
    pub fn desired(&self) -> Desired {
        let pods: Vec<PodInfo> = self.pods.values().cloned().collect();
        let opted_in = BTreeSet::from(["ns".to_owned()]);
        desired_state(&ClusterView {
            pods: &pods,
            nodes: &self.nodes,
            identities: &self.index,
            opted_in: &opted_in,
        })
    }
}

/// What the store saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    Saved(Target, TargetOwnership),
    Refused(Target),
}

#[derive(Debug, Default)]
struct StoreInner {
    records: BTreeMap<Target, TargetOwnership>,
    fail_saves: usize,
    events: Vec<StoreEvent>,
}

/// Ownership records in memory, shared by every executor built on a clone (a restart keeps them).
#[derive(Clone, Debug, Default)]
pub struct MemoryStore(Arc<Mutex<StoreInner>>);

impl MemoryStore {
    /// The records of `target`.
    pub fn records(&self, target: &Target) -> TargetOwnership {
        let inner = self.0.lock().unwrap();
        inner.records.get(target).cloned().unwrap_or_default()
    }

    /// The next `n` saves fail.
    pub fn fail_next_saves(&self, n: usize) {
        self.0.lock().unwrap().fail_saves = n;
    }

    /// Every save so far, in order.
    pub fn events(&self) -> Vec<StoreEvent> {
        self.0.lock().unwrap().events.clone()
    }
}

impl OwnershipStore for MemoryStore {
    async fn load(&self) -> Result<BTreeMap<Target, TargetOwnership>, StoreError> {
        Ok(self.0.lock().unwrap().records.clone())
    }

    async fn save(&self, target: &Target, records: &TargetOwnership) -> Result<(), StoreError> {
        let mut inner = self.0.lock().unwrap();
        if inner.fail_saves > 0 {
            inner.fail_saves -= 1;
            inner.events.push(StoreEvent::Refused(target.clone()));
            return Err(StoreError("injected".into()));
        }
        inner
            .events
            .push(StoreEvent::Saved(target.clone(), records.clone()));
        inner.records.insert(target.clone(), records.clone());
        Ok(())
    }
}

/// Wall-clock seconds that follow tokio's clock (paused in unit tests, real against the emulator).
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = self.start.elapsed().as_secs();
        Timestamp::from_unix_secs(1_000_000 + i64::try_from(elapsed).unwrap())
    }
}

/// A running executor.
pub struct Running {
    pub submitter: Submitter,
    pub reports: mpsc::UnboundedReceiver<Report>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts an executor over `arm` and `store`.
pub fn start<A: Arm>(arm: A, store: MemoryStore, policy: Policy, config: ExecConfig) -> Running {
    let (executor, reports) = Executor::new(arm, store, TokioClock::new(), policy, config);
    let submitter = executor.submitter();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(executor.run(shutdown));
    Running {
        submitter,
        reports,
        stop,
        task,
    }
}

impl Running {
    /// Submits the cluster's desired state.
    pub fn submit(&self, cluster: &Cluster) {
        self.submitter.submit(cluster.desired());
    }

    /// Stops the executor (rounds in flight are dropped) and waits for it.
    pub async fn stop(self) -> Vec<Report> {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        let mut reports = self.reports;
        let mut all = Vec::new();
        while let Ok(r) = reports.try_recv() {
            all.push(r);
        }
        all
    }

    /// Reports received so far.
    pub fn drain(&mut self) -> Vec<Report> {
        let mut all = Vec::new();
        while let Ok(r) = self.reports.try_recv() {
            all.push(r);
        }
        all
    }
}

/// Waits (on tokio's clock) until `done` holds, checking every 10 ms, at most `limit`.
pub async fn eventually<F: Fn() -> bool>(limit: Duration, what: &str, done: F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Fast pacing for tests: short window and backoff.
pub fn quick_config() -> ExecConfig {
    ExecConfig {
        coalesce_window: Duration::from_millis(500),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(10),
        refused_retry: Duration::from_secs(600),
        verify_interval: Duration::from_secs(600),
        ..ExecConfig::default()
    }
}

/// Applied changes of `reports` on `target`: (canonical id, is add).
pub fn applied(reports: &[Report], target: &Target) -> Vec<(String, bool)> {
    reports
        .iter()
        .filter_map(|r| match r {
            Report::Applied { target: t, changes } if t == target => Some(changes),
            _ => None,
        })
        .flatten()
        .map(|c| {
            (
                c.canonical.clone(),
                c.kind == podid_controller::plan::ChangeKind::Add,
            )
        })
        .collect()
}
