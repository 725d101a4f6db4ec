//! `podid-controller`'s flags, each also settable by a `PODID_*` variable, and the typed [`Config`] they become.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use podid_core::duration::parse_duration;

use crate::config::{EndpointOverrides, WorkloadIdentityFlags};
use crate::run::{Config, LeaderElection, LocalCluster};

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object a line.
    Json,
}

/// podid's controller: keeps the user-assigned identities running pods need assigned to their VMs and scale sets.
#[derive(Clone, Debug, Parser)]
#[command(name = "podid-controller", version)]
pub struct ControllerArgs {
    /// Address of the plain-HTTP admin server (/healthz, /readyz, /metrics).
    #[arg(long, env = "PODID_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    /// Namespace podid is installed in: the Lease and the state ConfigMap live there (default: the client's namespace).
    #[arg(long, env = "PODID_RELEASE_NAMESPACE")]
    pub release_namespace: Option<String>,
    /// ConfigMap in --release-namespace recording which identities the controller added.
    #[arg(
        long,
        env = "PODID_STATE_CONFIGMAP",
        default_value = "podid-controller-state"
    )]
    pub state_configmap: String,
    /// How long an identity no pod needs stays on a VM or scale set before it is removed.
    #[arg(long, env = "PODID_GRACE_PERIOD", value_parser = parse_duration, default_value = "2m")]
    pub grace_period: Duration,
    /// Elect a leader with a Lease (`--leader-elect=false`: this replica always acts; run one only).
    #[arg(long, env = "PODID_LEADER_ELECT", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = true, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Name of the Lease in --release-namespace.
    #[arg(
        long,
        env = "PODID_LEADER_ELECT_LEASE_NAME",
        default_value = "podid-controller"
    )]
    pub leader_elect_lease_name: String,
    /// This replica's holder identity (default: the host name, which is the pod name).
    #[arg(long, env = "PODID_LEADER_ELECT_IDENTITY")]
    pub leader_elect_identity: Option<String>,
    /// How long a Lease is valid after its last renewal; a standby takes over after it.
    #[arg(long, env = "PODID_LEADER_ELECT_LEASE_DURATION", value_parser = parse_duration, default_value = "15s")]
    pub leader_elect_lease_duration: Duration,
    /// The leader renews this long after its last renewal at the latest; a failed renewal stops it acting.
    #[arg(long, env = "PODID_LEADER_ELECT_RENEW_DEADLINE", value_parser = parse_duration, default_value = "10s")]
    pub leader_elect_renew_deadline: Duration,
    /// Wait between attempts after a Lease API error.
    #[arg(long, env = "PODID_LEADER_ELECT_RETRY_PERIOD", value_parser = parse_duration, default_value = "2s")]
    pub leader_elect_retry_period: Duration,
    /// Cloud config file (azure.json format): cloud, tenant, subscription, credentials, kubelet identity.
    #[arg(long, env = "PODID_CLOUD_CONFIG")]
    pub cloud_config: Option<PathBuf>,
    /// Workload identity: client id of the application or identity (else AZURE_CLIENT_ID, else the cloud config's).
    #[arg(long, env = "PODID_WORKLOAD_IDENTITY_CLIENT_ID")]
    pub workload_identity_client_id: Option<String>,
    /// Workload identity: tenant id (else AZURE_TENANT_ID, else the cloud config's).
    #[arg(long, env = "PODID_WORKLOAD_IDENTITY_TENANT_ID")]
    pub workload_identity_tenant_id: Option<String>,
    /// Workload identity: the projected ServiceAccount token (else AZURE_FEDERATED_TOKEN_FILE); setting it selects workload identity.
    #[arg(long, env = "PODID_FEDERATED_TOKEN_FILE")]
    pub federated_token_file: Option<PathBuf>,
    /// Azure Resource Manager endpoint (default: the cloud config's cloud, else the public cloud).
    #[arg(long, env = "PODID_ARM_ENDPOINT")]
    pub arm_endpoint: Option<String>,
    /// Entra ID authority host, https (default: the cloud's; else AZURE_AUTHORITY_HOST).
    #[arg(long, env = "PODID_AUTHORITY_HOST")]
    pub authority_host: Option<String>,
    /// Token scope for ARM (default: the cloud's ARM audience + /.default).
    #[arg(long, env = "PODID_ARM_SCOPE")]
    pub arm_scope: Option<String>,
    /// PEM file of the certificate authorities trusted for ARM instead of the system's.
    #[arg(long, env = "PODID_ARM_CA_FILE")]
    pub arm_ca_file: Option<PathBuf>,
    /// Identity never removed (resource id or client id); repeat the flag, or separate with ',' in the variable.
    #[arg(
        long = "immutable-identity",
        env = "PODID_IMMUTABLE_IDENTITIES",
        value_delimiter = ','
    )]
    pub immutable_identities: Vec<String>,
    /// Longest wait at shutdown for running ARM operations to stop and the Lease to be released.
    #[arg(long, env = "PODID_SHUTDOWN_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub shutdown_timeout: Duration,
    /// Read Pods, Nodes, Namespaces, AzureIdentity and AzureIdentityBinding objects from this
    /// multi-document YAML file (re-read when it changes) instead of the API server; no leader
    /// election, Events and conditions go to the log.
    #[arg(long, env = "PODID_CLUSTER_FILE")]
    pub cluster_file: Option<PathBuf>,
    /// With --cluster-file: the JSON file recording which identities the controller added
    /// (default: the cluster file's path with `.state.json` appended).
    #[arg(long, env = "PODID_STATE_FILE", requires = "cluster_file")]
    pub state_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "PODID_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "PODID_LOG", default_value = "info")]
    pub log: String,
}

/// The flags are consistent but something is missing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// Leader election needs an identity.
    #[error("--leader-elect needs --leader-elect-identity (or a host name)")]
    NoIdentity,
}

impl ControllerArgs {
    /// The typed configuration. `env` looks up the variables the azure-workload-identity
    /// webhook injects (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`,
    /// `AZURE_AUTHORITY_HOST`) and `HOSTNAME`, as fallbacks for the flags.
    pub fn to_config(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ArgsError> {
        let Self {
            admin_listen,
            release_namespace,
            state_configmap,
            grace_period,
            leader_elect,
            leader_elect_lease_name,
            leader_elect_identity,
            leader_elect_lease_duration,
            leader_elect_renew_deadline,
            leader_elect_retry_period,
            cloud_config,
            workload_identity_client_id,
            workload_identity_tenant_id,
            federated_token_file,
            arm_endpoint,
            authority_host,
            arm_scope,
            arm_ca_file,
            immutable_identities,
            shutdown_timeout,
            cluster_file,
            state_file,
            log_format: _,
            log: _,
        } = self;
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        // A cluster file has no Lease to contest: that run always acts.
        let leader_election = (leader_elect && cluster_file.is_none())
            .then(|| {
                let identity = leader_elect_identity.or_else(|| env("HOSTNAME"))?;
                Some(LeaderElection {
                    lease_name: leader_elect_lease_name,
                    identity,
                    lease_duration: leader_elect_lease_duration,
                    renew_deadline: leader_elect_renew_deadline,
                    retry_period: leader_elect_retry_period,
                })
            })
            .map(|le| le.ok_or(ArgsError::NoIdentity))
            .transpose()?;
        Ok(Config {
            admin_listen,
            release_namespace,
            state_configmap,
            grace_period,
            leader_election,
            cloud_config,
            workload_identity: WorkloadIdentityFlags {
                client_id: workload_identity_client_id.or_else(|| env("AZURE_CLIENT_ID")),
                tenant_id: workload_identity_tenant_id.or_else(|| env("AZURE_TENANT_ID")),
                token_file: federated_token_file
                    .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from)),
            },
            endpoints: EndpointOverrides {
                arm: arm_endpoint,
                authority_host: authority_host.or_else(|| env("AZURE_AUTHORITY_HOST")),
                arm_scope,
            },
            arm_ca_file,
            immutable_identities: immutable_identities
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            shutdown_timeout,
            cluster_file: cluster_file.map(|cluster_file| LocalCluster {
                state_file: state_file.unwrap_or_else(|| {
                    let mut path = cluster_file.clone().into_os_string();
                    path.push(".state.json");
                    path.into()
                }),
                cluster_file,
            }),
        })
    }
}

/// Sets up `tracing` on stderr.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What chart/templates/_helpers.tpl `podid.controller.args` renders (workload identity on).
    const CHART: &[&str] = &[
        "podid-controller",
        "--admin-listen=0.0.0.0:8080",
        "--release-namespace=podid-system",
        "--leader-elect",
        "--leader-elect-lease-name=podid-controller",
        "--leader-elect-identity=podid-controller-0",
        "--leader-elect-lease-duration=15s",
        "--leader-elect-renew-deadline=10s",
        "--leader-elect-retry-period=2s",
        "--state-configmap=podid-controller-state",
        "--grace-period=2m",
        "--cloud-config=/etc/kubernetes/azure.json",
        "--workload-identity-client-id=cid",
        "--workload-identity-tenant-id=tid",
        "--federated-token-file=/var/run/secrets/azure/tokens/azure-identity-token",
        "--arm-endpoint=https://management.azure.com",
        "--authority-host=https://login.microsoftonline.com",
        "--immutable-identity=a",
        "--immutable-identity=b",
        "--log-format=json",
        "--log=info",
    ];

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_chart_flags_parse_into_the_config() {
        let cfg = ControllerArgs::try_parse_from(CHART)
            .unwrap()
            .to_config(no_env)
            .unwrap();
        assert_eq!(cfg.release_namespace.as_deref(), Some("podid-system"));
        assert_eq!(cfg.grace_period, Duration::from_secs(120));
        let le = cfg.leader_election.unwrap();
        assert_eq!(
            (le.identity.as_str(), le.lease_name.as_str()),
            ("podid-controller-0", "podid-controller")
        );
        assert_eq!(
            (le.lease_duration, le.renew_deadline, le.retry_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        assert_eq!(cfg.immutable_identities, ["a", "b"]);
        assert_eq!(cfg.workload_identity.client_id.as_deref(), Some("cid"));
        assert_eq!(
            cfg.endpoints.arm.as_deref(),
            Some("https://management.azure.com")
        );
    }

    #[test]
    fn leader_election_can_be_turned_off_and_is_on_by_default() {
        let off = ControllerArgs::try_parse_from(["c", "--leader-elect=false"]).unwrap();
        assert!(off.to_config(no_env).unwrap().leader_election.is_none());
        let default = ControllerArgs::try_parse_from(["c"]).unwrap();
        assert_eq!(
            default.clone().to_config(no_env),
            Err(ArgsError::NoIdentity)
        );
        let host = |n: &str| (n == "HOSTNAME").then(|| "pod-7".to_owned());
        let le = default.to_config(host).unwrap().leader_election.unwrap();
        assert_eq!(le.identity, "pod-7");
    }

    #[test]
    fn workload_identity_variables_fill_in_missing_flags_only() {
        let env = |n: &str| match n {
            "AZURE_CLIENT_ID" => Some("env-client".to_owned()),
            "AZURE_TENANT_ID" => Some("env-tenant".to_owned()),
            "AZURE_FEDERATED_TOKEN_FILE" => Some("/env/token".to_owned()),
            "AZURE_AUTHORITY_HOST" => Some("https://login.env".to_owned()),
            _ => None,
        };
        let args = ControllerArgs::try_parse_from([
            "c",
            "--leader-elect=false",
            "--workload-identity-client-id=flag-client",
        ])
        .unwrap();
        let cfg = args.to_config(env).unwrap();
        assert_eq!(
            cfg.workload_identity.client_id.as_deref(),
            Some("flag-client")
        );
        assert_eq!(
            cfg.workload_identity.tenant_id.as_deref(),
            Some("env-tenant")
        );
        assert_eq!(
            cfg.workload_identity.token_file,
            Some(PathBuf::from("/env/token"))
        );
        assert_eq!(
            cfg.endpoints.authority_host.as_deref(),
            Some("https://login.env")
        );
    }

    #[test]
    fn a_cluster_file_turns_leader_election_off_and_names_a_state_file() {
        let args = ControllerArgs::try_parse_from(["c", "--cluster-file=/tmp/c.yaml"]).unwrap();
        let cfg = args.to_config(no_env).unwrap();
        assert!(
            cfg.leader_election.is_none(),
            "no Lease without an API server"
        );
        let local = cfg.cluster_file.unwrap();
        assert_eq!(local.state_file, PathBuf::from("/tmp/c.yaml.state.json"));
        let args =
            ControllerArgs::try_parse_from(["c", "--cluster-file=c", "--state-file=s"]).unwrap();
        let local = args.to_config(no_env).unwrap().cluster_file.unwrap();
        assert_eq!(local.state_file, PathBuf::from("s"));
        assert!(ControllerArgs::try_parse_from(["c", "--state-file=s"]).is_err());
    }

    #[test]
    fn unknown_flags_and_bad_durations_are_refused() {
        assert!(ControllerArgs::try_parse_from(["c", "--nope"]).is_err());
        assert!(ControllerArgs::try_parse_from(["c", "--grace-period=soon"]).is_err());
    }
}
