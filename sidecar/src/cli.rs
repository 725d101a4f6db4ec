//! Flags of the three subcommands, each also settable by `PODID_*`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use podid_core::duration::parse_duration;
use podid_core::proxy_config::ProxyIdentity;

/// `podid-proxy`.
#[derive(Parser, Debug)]
#[command(name = "podid-proxy", version, about = "podid's per-pod IMDS proxy")]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve IMDS to the pod: tokens for its own identities only.
    Serve(Box<ServeArgs>),
    /// Install the iptables redirect of IMDS traffic to the proxy, then exit.
    Init(InitArgs),
    /// Wait until the proxy reports ready (the legacy layout's postStart hook).
    WaitReady(WaitReadyArgs),
}

/// `podid-proxy serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the IMDS endpoint the redirect targets.
    #[arg(long, env = "PODID_LISTEN", default_value = "127.0.0.1:15391")]
    pub listen: SocketAddr,
    /// Address of /ready, /live and /metrics.
    #[arg(long, env = "PODID_ADMIN_LISTEN", default_value = "0.0.0.0:15392")]
    pub admin_listen: SocketAddr,
    /// An identity the pod may use (`name=…,type=…,client-id=…`); the first is the default.
    #[arg(long = "identity", env = "PODID_IDENTITIES", value_delimiter = ' ')]
    pub identities: Vec<ProxyIdentity>,
    /// How long /ready waits for the default identity's token before reporting ready anyway.
    #[arg(long, env = "PODID_READY_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub ready_timeout: Duration,
    /// After SIGTERM, keep serving (with /ready failing) this long before closing the listeners.
    #[arg(long, env = "PODID_SHUTDOWN_DELAY", value_parser = parse_duration, default_value = "0s")]
    pub shutdown_delay: Duration,
    /// Refuse IMDS paths other than the token endpoint instead of forwarding them.
    #[arg(long, env = "PODID_BLOCK_OTHER_PATHS")]
    pub block_other_paths: bool,
    /// The node's IMDS (tests point this elsewhere; in a pod it is always the real one).
    #[arg(
        long,
        env = "PODID_IMDS_ENDPOINT",
        default_value = "169.254.169.254:80",
        hide = true
    )]
    pub imds_endpoint: SocketAddr,
    /// Total time for one upstream token fetch, retries included (shorter than the SDKs' timeouts).
    #[arg(long, env = "PODID_UPSTREAM_DEADLINE", value_parser = parse_duration, default_value = "10s")]
    pub upstream_deadline: Duration,
    /// Time for one upstream attempt (connect, send, read the answer).
    #[arg(long, env = "PODID_UPSTREAM_ATTEMPT_TIMEOUT", value_parser = parse_duration, default_value = "5s")]
    pub upstream_attempt_timeout: Duration,
    /// Most (identity, resource) tokens kept; the least recently used goes first.
    #[arg(long, env = "PODID_CACHE_SIZE", default_value_t = 64)]
    pub cache_size: usize,
    /// Azure AD authority for service principals whose AzureIdentity names none.
    #[arg(
        long,
        env = "PODID_AAD_AUTHORITY",
        default_value = "https://login.microsoftonline.com",
        hide = true
    )]
    pub aad_authority: String,
    /// Log format.
    #[arg(long, env = "PODID_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Log filter.
    #[arg(long, env = "PODID_LOG", default_value = "info")]
    pub log: String,
}

/// `podid-proxy init`.
#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// uid whose connections are not redirected (the proxy's).
    #[arg(long, env = "PODID_PROXY_UID", default_value_t = 1501)]
    pub proxy_uid: u32,
    /// Port the proxy listens on, on 127.0.0.1.
    #[arg(long, env = "PODID_PROXY_PORT", default_value_t = 15391)]
    pub proxy_port: u16,
    /// iptables backend: auto (the one already holding rules, else nft), nft or legacy.
    #[arg(long, env = "PODID_IPTABLES_BACKEND", value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Print the plan without applying it.
    #[arg(long)]
    pub dry_run: bool,
    /// For pods that need no IMDS (all identities federated): redirect every uid, the
    /// proxy's too, and reject every other packet to 169.254.169.254 (filter table).
    #[arg(long, env = "PODID_REJECT_IMDS")]
    pub reject_imds: bool,
}

/// iptables backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Whichever already holds rules in this network namespace, else nft.
    Auto,
    /// `iptables-nft-*`.
    Nft,
    /// `iptables-legacy-*`.
    Legacy,
}

/// `podid-proxy wait-ready`.
#[derive(Args, Debug, Clone)]
pub struct WaitReadyArgs {
    /// The proxy's readiness URL.
    #[arg(long, default_value = "http://127.0.0.1:15392/ready")]
    pub url: String,
    /// Give up (and exit 0, so the pod is not stuck) after this long.
    #[arg(long, value_parser = parse_duration, default_value = "90s")]
    pub timeout: Duration,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object a line.
    Json,
}
