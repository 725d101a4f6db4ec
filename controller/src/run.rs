//! The controller process: Azure settings, watchers, admin server, leader election, and per leadership term the executor and pod reports.
//!
//! ```text
//! watchers ─▶ ClusterIndex ─(debounced)─▶ desired_state ─▶ Executor (ARM) ─▶ Reports ─┐
//!                                               └──────────▶ StatusFeed ◀───────────────┘─▶ pod conditions, Events
//! ```
//!
//! Every replica watches (so `/readyz` means the same everywhere and a new
//! leader starts warm); only the leader runs an executor and tells pods.
//! A term ends when leadership is lost or at shutdown: the executor stops,
//! then the Lease is released.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ::kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::admin::{self, AdminState, GlueMetrics};
use crate::arm::{
    ArmClient, ArmClientConfig, ArmClientError, TransportError, TrustRoots, roots_from_pem,
};
use crate::auth::{AuthError, AzureTokens};
use crate::config::{
    CloudConfig, ConfigError, EndpointOverrides, WorkloadIdentityFlags, choose_credential,
    resolve_endpoints,
};
use crate::exec::{ExecConfig, Executor, Submitter};
use crate::kube::{
    ClusterIndex, ConfigMapStore, Debounce, KubePodSink, Leadership, LeaseSettings,
    LeaseSettingsError, ObservingArm, StatusFeed, Trigger, watch_cluster,
};
use crate::metrics::Metrics;
use crate::plan::{Policy, desired_state};
use crate::seams::{Arm, SystemClock};

/// Leader-election flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// Lease name.
    pub lease_name: String,
    /// Holder identity.
    pub identity: String,
    /// Lease duration.
    pub lease_duration: Duration,
    /// Renew deadline.
    pub renew_deadline: Duration,
    /// Retry period.
    pub retry_period: Duration,
}

/// Everything the controller is told at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Admin server address.
    pub admin_listen: SocketAddr,
    /// Namespace of the Lease and the state ConfigMap (`None`: the client's).
    pub release_namespace: Option<String>,
    /// The state ConfigMap.
    pub state_configmap: String,
    /// Removal grace period.
    pub grace_period: Duration,
    /// Leader election; `None`: always lead.
    pub leader_election: Option<LeaderElection>,
    /// The azure.json file.
    pub cloud_config: Option<PathBuf>,
    /// Workload identity flags.
    pub workload_identity: WorkloadIdentityFlags,
    /// Endpoint flags.
    pub endpoints: EndpointOverrides,
    /// CA file for ARM.
    pub arm_ca_file: Option<PathBuf>,
    /// Identities never removed.
    pub immutable_identities: Vec<String>,
    /// Longest wait at shutdown.
    pub shutdown_timeout: Duration,
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Cloud config, endpoints or credential.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The azure_identity credential.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The ARM CA file.
    #[error("reading --arm-ca-file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The ARM CA file's content.
    #[error("--arm-ca-file: {0}")]
    Roots(#[from] TransportError),
    /// The ARM client.
    #[error(transparent)]
    Arm(#[from] ArmClientError),
    /// No Kubernetes client.
    #[error("connecting to the Kubernetes API server: {0}")]
    Kube(#[from] ::kube::Error),
    /// Leader-election flags.
    #[error(transparent)]
    Lease(#[from] LeaseSettingsError),
    /// The admin listener.
    #[error("binding the admin server to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The ARM client and removal policy built from the Azure settings.
fn azure(cfg: &Config, metrics: &Metrics) -> Result<(ArmClient<AzureTokens>, Policy), RunError> {
    let cloud = cfg
        .cloud_config
        .as_deref()
        .map(CloudConfig::load)
        .transpose()?;
    let endpoints = resolve_endpoints(&cfg.endpoints, cloud.as_ref())?;
    let credential = choose_credential(&cfg.workload_identity, cloud.as_ref())?;
    info!(
        credential = credential.kind(),
        arm = %endpoints.arm,
        authority_host = %endpoints.authority_host,
        scope = %endpoints.arm_scope,
        "Azure settings"
    );
    let tokens = AzureTokens::new(&credential, &endpoints.authority_host, &endpoints.arm_scope)?;
    let roots = match &cfg.arm_ca_file {
        None => TrustRoots::Native,
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| RunError::CaFile {
                path: path.clone(),
                source,
            })?;
            TrustRoots::Custom(roots_from_pem(&pem)?)
        }
    };
    let arm_config = ArmClientConfig {
        endpoint: endpoints.arm,
        roots,
        ..ArmClientConfig::default()
    };
    let arm = ArmClient::new(arm_config, tokens)?.with_metrics(metrics.arm.clone());
    let immutable = cfg.immutable_identities.iter().map(String::as_str);
    let mut policy = Policy::new(cfg.grace_period).with_immutable(immutable);
    if let Some(kubelet) = cloud.as_ref().map(|c| c.user_assigned_identity_id.as_str()) {
        policy = policy.with_cluster_identity(kubelet);
    }
    Ok((arm, policy))
}

/// What the controller runs with besides its [`Config`]: built by [`run`], or by tests.
#[allow(missing_debug_implementations)] // kube::Client is not Debug
pub struct Wiring<A> {
    /// The Kubernetes client.
    pub client: Client,
    /// Azure Resource Manager.
    pub arm: A,
    /// Removal policy.
    pub policy: Policy,
    /// The registry; the ARM client's and the executor's handles count into it.
    pub metrics: Metrics,
}

/// What every leadership term shares.
struct Shared<A> {
    client: Client,
    namespace: String,
    state_configmap: String,
    reporter: String,
    arm: Arc<A>,
    policy: Policy,
    exec: ExecConfig,
    index: Arc<ClusterIndex>,
    glue: GlueMetrics,
    shutdown_timeout: Duration,
}

/// Runs the controller until `shutdown` completes, then stops acting and releases the Lease.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let (arm, policy) = azure(&cfg, &metrics)?;
    let client = Client::try_default().await?;
    let wiring = Wiring {
        client,
        arm,
        policy,
        metrics,
    };
    run_wired(cfg, wiring, shutdown).await
}

/// [`run`] with the client, ARM and policy given.
pub async fn run_wired<A: Arm>(
    cfg: Config,
    wiring: Wiring<A>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let Wiring {
        client,
        arm,
        policy,
        mut metrics,
    } = wiring;
    let glue = GlueMetrics::register(&mut metrics);
    let exec = ExecConfig {
        metrics: metrics.exec.clone(),
        ..ExecConfig::default()
    };
    let namespace = cfg
        .release_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let addr = cfg.admin_listen;
    let listener = bind(addr).await?;
    let leadership = match &cfg.leader_election {
        None => Leadership::always(),
        Some(le) => Leadership::start(client.clone(), lease_settings(le, &namespace))?,
    };
    let index = Arc::new(ClusterIndex::new());
    let watcher = tokio::spawn(watch_cluster(client.clone(), Arc::clone(&index)));
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
    info!(%namespace, %addr, "controller started");
    let reporter = cfg.leader_election.as_ref().map(|l| l.identity.clone());
    let shared = Shared {
        reporter: reporter.unwrap_or_else(|| "podid-controller".into()),
        client,
        namespace,
        state_configmap: cfg.state_configmap.clone(),
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

async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

fn lease_settings(le: &LeaderElection, namespace: &str) -> LeaseSettings {
    LeaseSettings {
        namespace: namespace.to_owned(),
        name: le.lease_name.clone(),
        identity: le.identity.clone(),
        lease_duration: le.lease_duration,
        renew_deadline: le.renew_deadline,
        retry_period: le.retry_period,
    }
}

/// Completes once `rx` holds `true` (or its sender is gone).
async fn until_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

impl<A: Arm> Shared<A> {
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
        let sink = KubePodSink::new(self.client.clone(), self.reporter.clone());
        let (feed, status) = StatusFeed::new(sink);
        let status = tokio::spawn(status);
        let store = ConfigMapStore::new(
            self.client.clone(),
            &self.namespace,
            self.state_configmap.clone(),
        );
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
