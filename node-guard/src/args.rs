//! Flags (every one also settable as `PODID_*`), and the typed [`Config`] the library runs on.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use podid_core::duration::parse_duration;
use podid_core::guard::GuardPolicy;
use podid_core::guard::nft::{DEFAULT_TABLE, RuleConfig};
use podid_core::selector::LabelSelector;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object a line.
    Json,
}

/// podid's node guard: only allowed pods of this node reach the node's IMDS.
#[derive(Debug, Parser)]
#[command(name = "podid-node-guard", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Keep the rules in step with the node's pods (the DaemonSet's command).
    Run(Box<RunArgs>),
    /// Remove the guard's nftables table (uninstall by hand; the DaemonSet does it itself when deleted).
    Cleanup(CleanupArgs),
}

/// `cleanup` flags.
#[derive(Clone, Debug, Args)]
pub struct CleanupArgs {
    /// nftables table (family ip) the guard owns.
    #[arg(long, env = "PODID_GUARD_TABLE", default_value = DEFAULT_TABLE)]
    pub table: String,
    /// The nft program.
    #[arg(long, env = "PODID_NFT", default_value = "nft")]
    pub nft: PathBuf,
}

/// `run` flags.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// This node's name (downward API `spec.nodeName`): the pods watched are this node's.
    #[arg(long, env = "PODID_NODE_NAME", required_unless_present = "pods_file")]
    pub node_name: Option<String>,
    /// Read pods from this JSON or YAML file (re-read when it changes) instead of the API server.
    #[arg(long, env = "PODID_PODS_FILE")]
    pub pods_file: Option<PathBuf>,
    /// How often the pods file is checked for changes.
    #[arg(long, env = "PODID_PODS_FILE_POLL", value_parser = parse_duration, default_value = "50ms")]
    pub pods_file_poll: Duration,
    /// Label selector of pods allowed to reach IMDS (the webhook's exceptions); repeat, or ';' in the variable.
    #[arg(long = "exception", env = "PODID_EXCEPTIONS", value_delimiter = ';', value_parser = LabelSelector::parse)]
    pub exceptions: Vec<LabelSelector>,
    /// Namespace whose pods are all allowed (kube-system components); repeat, or ',' in the variable.
    #[arg(
        long = "allow-namespace",
        env = "PODID_ALLOW_NAMESPACES",
        value_delimiter = ','
    )]
    pub allow_namespaces: Vec<String>,
    /// Namespace where the label kubernetes.azure.com/managedby=aks allows a pod ('*': every namespace).
    #[arg(
        long = "aks-label-namespace",
        env = "PODID_AKS_LABEL_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    pub aks_label_namespaces: Vec<String>,
    /// The proxy image the webhook injects; an injected pod's podid-proxy must run exactly it.
    #[arg(long, env = "PODID_PROXY_IMAGE")]
    pub proxy_image: Option<String>,
    /// nftables table (family ip) the guard owns.
    #[arg(long, env = "PODID_GUARD_TABLE", default_value = DEFAULT_TABLE)]
    pub table: String,
    /// The IMDS address and port guarded.
    #[arg(long, env = "PODID_IMDS_ADDR", default_value = "169.254.169.254:80")]
    pub imds_addr: SocketAddrV4,
    /// Where the responder listens (host network).
    #[arg(long, env = "PODID_RESPONDER_LISTEN", default_value = "0.0.0.0:15393")]
    pub responder_listen: SocketAddr,
    /// Address blocked TCP to IMDS is DNATed to (the node's IP, downward API `status.hostIP`);
    /// unset: redirected to the address of the interface it came in on.
    #[arg(long, env = "PODID_RESPONDER_IP")]
    pub responder_ip: Option<Ipv4Addr>,
    /// Address of the plain-HTTP admin server (/healthz, /readyz, /metrics).
    #[arg(long, env = "PODID_ADMIN_LISTEN", default_value = "0.0.0.0:15394")]
    pub admin_listen: SocketAddr,
    /// How often the whole rule set is rewritten (heals rules changed behind the guard's back).
    #[arg(long, env = "PODID_RESYNC_INTERVAL", value_parser = parse_duration, default_value = "5m")]
    pub resync_interval: Duration,
    /// At most one blocked-access Event per pod per this interval.
    #[arg(long, env = "PODID_EVENT_INTERVAL", value_parser = parse_duration, default_value = "5m")]
    pub event_interval: Duration,
    /// The guard's own DaemonSet: when it is gone or being deleted at shutdown, the rules are removed.
    #[arg(long, env = "PODID_DAEMONSET")]
    pub daemonset: Option<String>,
    /// Namespace of the guard's DaemonSet (downward API `metadata.namespace`).
    #[arg(long, env = "PODID_NAMESPACE")]
    pub namespace: Option<String>,
    /// This pod's name (downward API), the Events' reporting instance.
    #[arg(long, env = "PODID_POD_NAME", default_value = "podid-node-guard")]
    pub pod_name: String,
    /// The nft program.
    #[arg(long, env = "PODID_NFT", default_value = "nft")]
    pub nft: PathBuf,
    /// Log line format.
    #[arg(long, env = "PODID_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "PODID_LOG", default_value = "info")]
    pub log: String,
}

/// Where the pods come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The API server: pods with `spec.nodeName` = this node.
    Kube {
        /// The node's name.
        node: String,
        /// The guard's DaemonSet (`namespace`, `name`), checked at shutdown.
        daemonset: Option<(String, String)>,
    },
    /// A file of pods, polled.
    File {
        /// The file.
        path: PathBuf,
        /// Poll interval.
        poll: Duration,
    },
}

/// Everything the guard runs on.
#[derive(Clone, Debug)]
pub struct Config {
    /// Pod input.
    pub source: Source,
    /// Who is allowed.
    pub policy: GuardPolicy,
    /// The rules' shape.
    pub rules: RuleConfig,
    /// Responder listen address.
    pub responder_listen: SocketAddr,
    /// Admin listen address.
    pub admin_listen: SocketAddr,
    /// Full resync interval.
    pub resync_interval: Duration,
    /// Event rate limit per pod.
    pub event_interval: Duration,
    /// Reporting instance of Events.
    pub pod_name: String,
    /// The nft program.
    pub nft: PathBuf,
}

/// Flags that cannot work together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// `--daemonset` without its namespace.
    #[error(
        "--daemonset needs --namespace (PODID_NAMESPACE, the downward API's metadata.namespace)"
    )]
    NoNamespace,
    /// A table name nft would not take.
    #[error("--table {0:?}: use letters, digits and '_' only")]
    BadTable(String),
}

// === impl RunArgs ===

impl RunArgs {
    /// The typed configuration.
    pub fn to_config(&self) -> Result<Config, ArgsError> {
        let Self {
            node_name,
            pods_file,
            pods_file_poll,
            exceptions,
            allow_namespaces,
            aks_label_namespaces,
            proxy_image,
            table,
            imds_addr,
            responder_listen,
            responder_ip,
            admin_listen,
            resync_interval,
            event_interval,
            daemonset,
            namespace,
            pod_name,
            nft,
            log_format: _,
            log: _,
        } = self.clone();
        if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ArgsError::BadTable(table));
        }
        let daemonset = match (daemonset, namespace) {
            (Some(ds), Some(ns)) => Some((ns, ds)),
            (Some(_), None) => return Err(ArgsError::NoNamespace),
            (None, _) => None,
        };
        let source = match (pods_file, node_name) {
            (Some(path), _) => Source::File {
                path,
                poll: pods_file_poll,
            },
            (None, node) => Source::Kube {
                node: node.unwrap_or_default(),
                daemonset,
            },
        };
        let set = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect();
        Ok(Config {
            source,
            policy: GuardPolicy {
                exceptions,
                allowed_namespaces: set(allow_namespaces),
                aks_label_namespaces: set(aks_label_namespaces),
                proxy_image: proxy_image.filter(|s| !s.is_empty()),
            },
            rules: RuleConfig {
                table,
                imds: imds_addr,
                responder_ip,
                responder_port: responder_listen.port(),
            },
            responder_listen,
            admin_listen,
            resync_interval,
            event_interval,
            pod_name,
            nft,
        })
    }
}

/// Installs the global tracing subscriber.
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

    fn run(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(["podid-node-guard", "run"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        args.to_config().map_err(|e| e.to_string())
    }

    #[test]
    fn kube_mode_with_the_charts_flags() {
        let cfg = run(&[
            "--node-name=aks-node-0",
            "--exception=app=a,tier=b",
            "--exception=team=x",
            "--allow-namespace=gatekeeper-system,calico-system",
            "--proxy-image=podid/proxy:0.1.0",
            "--responder-ip=10.224.0.4",
            "--daemonset=podid-node-guard",
            "--namespace=podid-system",
        ])
        .unwrap();
        assert_eq!(
            cfg.source,
            Source::Kube {
                node: "aks-node-0".into(),
                daemonset: Some(("podid-system".into(), "podid-node-guard".into()))
            }
        );
        assert_eq!(cfg.policy.exceptions.len(), 2);
        assert_eq!(cfg.policy.allowed_namespaces.len(), 2);
        assert!(cfg.policy.aks_label_namespaces.contains("kube-system"));
        assert_eq!(cfg.rules.responder_port, 15393);
        assert_eq!(cfg.admin_listen.port(), 15394);
    }

    #[test]
    fn bad_flags_say_what_to_fix() {
        let err = run(&[]).unwrap_err();
        assert!(err.contains("--node-name"), "{err}");
        let err = run(&["--node-name=n", "--daemonset=d"]).unwrap_err();
        assert!(err.contains("--namespace"), "{err}");
        let err = run(&["--node-name=n", "--table=a;b"]).unwrap_err();
        assert!(err.contains("--table"), "{err}");
        let err = run(&["--node-name=n", "--exception=app in (x"]).unwrap_err();
        assert!(err.contains("unbalanced"), "{err}");
        let err = run(&["--pods-file=/p", "--pods-file-poll=fast"]).unwrap_err();
        assert!(err.contains("fast"), "{err}");
    }
}
