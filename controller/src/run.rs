//! The controller process: Azure settings, the cluster source (API server watchers, or `--cluster-file`), admin server, leader election, and per leadership term the executor and pod reports.
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
use tracing::info;

use crate::arm::{
    ArmClient, ArmClientConfig, ArmClientError, TransportError, TrustRoots, roots_from_pem,
};
use crate::auth::{AuthError, AzureTokens};
use crate::config::{
    CloudConfig, ConfigError, EndpointOverrides, WorkloadIdentityFlags, choose_credential,
    resolve_endpoints,
};
use crate::kube::{ClusterIndex, Leadership, LeaseSettings, LeaseSettingsError, watch_cluster};
use crate::local::{ClusterFile, SourceError, stamp, watch_file};
use crate::metrics::Metrics;
use crate::plan::Policy;
use crate::seams::Arm;

mod serve;

use self::serve::{KubeOutputs, LocalOutputs, Parts, serve};

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
    /// Read the cluster from this file instead of the API server (`--cluster-file`).
    pub cluster_file: Option<LocalCluster>,
}

/// `--cluster-file` runs: where the cluster and the ownership records are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalCluster {
    /// Pods, Nodes, Namespaces, AzureIdentity and AzureIdentityBinding objects (YAML).
    pub cluster_file: PathBuf,
    /// The ownership records (JSON).
    pub state_file: PathBuf,
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
    /// The `--cluster-file`.
    #[error(transparent)]
    ClusterFile(#[from] SourceError),
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

/// Runs the controller until `shutdown` completes, then stops acting and releases the Lease.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let (arm, policy) = azure(&cfg, &metrics)?;
    if let Some(local) = cfg.cluster_file.clone() {
        return run_local(cfg, local, arm, policy, metrics, shutdown).await;
    }
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
        metrics,
    } = wiring;
    let listener = bind(cfg.admin_listen).await?;
    let namespace = cfg
        .release_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let leadership = match &cfg.leader_election {
        None => Leadership::always(),
        Some(le) => Leadership::start(client.clone(), lease_settings(le, &namespace))?,
    };
    info!(%namespace, "watching the API server");
    let outputs = KubeOutputs {
        reporter: cfg
            .leader_election
            .as_ref()
            .map_or_else(|| "podid-controller".to_owned(), |l| l.identity.clone()),
        client: client.clone(),
        namespace,
        state_configmap: cfg.state_configmap.clone(),
    };
    let source = |index| watch_cluster(client, index);
    let parts = Parts {
        listener,
        arm,
        policy,
        metrics,
        leadership,
    };
    serve(&cfg, parts, outputs, source, shutdown).await
}

/// `--cluster-file`: the cluster from a file, records in a file, reports in the log; always leads.
/// [`run`] calls it for a [`Config`] with `cluster_file`; tests call it with their own ARM.
pub async fn run_local<A: Arm>(
    cfg: Config,
    local: LocalCluster,
    arm: A,
    policy: Policy,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let LocalCluster {
        cluster_file,
        state_file,
    } = local;
    let listener = bind(cfg.admin_listen).await?;
    let seen = stamp(&cluster_file);
    let first = ClusterFile::read(&cluster_file)?;
    info!(cluster_file = %cluster_file.display(), state_file = %state_file.display(),
          "reading the cluster from a file; no API server");
    let source = move |index: Arc<ClusterIndex>| {
        first.apply_to(&index);
        watch_file(cluster_file, index, seen)
    };
    let parts = Parts {
        listener,
        arm,
        policy,
        metrics,
        leadership: Leadership::always(),
    };
    serve(&cfg, parts, LocalOutputs(state_file), source, shutdown).await
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
