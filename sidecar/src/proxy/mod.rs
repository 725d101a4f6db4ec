//! `podid-proxy serve`: answers IMDS for the pod, handing out tokens for the pod's own identities only (CONTRACT.md §4).
//!
//! Layout: [`server`] accepts connections (hyper's HTTP/1 API, so the rules
//! see the raw request target); [`endpoint`] applies core's IMDS rules and
//! [`select`]s the identity; [`cache`] keeps tokens per (identity, resource)
//! with single-flight fetches and refresh ahead of expiry; [`upstream`] asks
//! IMDS (type 0) or Azure AD (types 1, 2) with [`retry`]; [`admin`] serves
//! `/live`, `/ready` and `/metrics`.
//!
//! Dependencies: no azure_identity, reqwest or hyper's pooled client. The
//! proxy runs in every pod, within a ≤ 5 MB binary and ≤ 4 MiB idle RSS;
//! the two upstream calls it needs (an IMDS GET, an Azure AD form POST with a
//! secret or an RS256 assertion) are a few hundred lines on hyper's connection
//! API, rustls and ring, which the binary links anyway. It links neither
//! kube nor k8s-openapi (checked by `tests/proxy_links.rs`).

pub mod admin;
pub mod cache;
pub mod endpoint;
pub mod metrics;
pub mod reply;
pub mod retry;
pub mod select;
pub mod server;
pub mod token;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use podid_core::proxy_config::ProxyIdentity;
use rustls::RootCertStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use self::cache::TokenCache;
use self::metrics::Metrics;
use self::retry::RetryPolicy;
use self::upstream::{AuthorityError, Identity, Imds, Upstream};
use crate::cli::{LogFormat, ServeArgs};

/// Everything `serve` needs; tests build it directly.
#[derive(Clone, Debug)]
pub struct Config {
    /// The IMDS listener (the redirect's target).
    pub listen: SocketAddr,
    /// `/ready`, `/live`, `/metrics`.
    pub admin_listen: SocketAddr,
    /// The pod's identities; the first is the default.
    pub identities: Vec<ProxyIdentity>,
    /// `/ready` reports ready after this long even without a token.
    pub ready_timeout: Duration,
    /// Refuse IMDS paths other than the token endpoint.
    pub block_other_paths: bool,
    /// The node's IMDS.
    pub imds_endpoint: SocketAddr,
    /// Retries, per-attempt timeout and deadline of upstream calls.
    pub retry: RetryPolicy,
    /// Most (identity, resource) keys the token cache holds.
    pub cache_size: usize,
    /// Azure AD authority for service principals that name none.
    pub aad_authority: String,
    /// Roots trusted for Azure AD; `None` for the platform's (honouring `SSL_CERT_FILE`).
    pub tls_roots: Option<RootCertStore>,
    /// After the shutdown signal, keep serving (with `/ready` failing) this long before
    /// closing the listeners; in-flight requests then still finish.
    pub shutdown_delay: Duration,
}

impl Config {
    /// The contract's listeners and defaults for `identities`.
    pub fn new(identities: Vec<ProxyIdentity>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], podid_core::names::PROXY_PORT)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], podid_core::names::PROXY_ADMIN_PORT)),
            identities,
            ready_timeout: Duration::from_secs(60),
            shutdown_delay: Duration::ZERO,
            block_other_paths: false,
            imds_endpoint: SocketAddr::from(([169, 254, 169, 254], 80)),
            retry: RetryPolicy::default(),
            cache_size: 64,
            aad_authority: upstream::aad::DEFAULT_AUTHORITY.to_owned(),
            tls_roots: None,
        }
    }
}

/// Why the proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A listener could not be bound.
    #[error("binding the {what} listener on {addr}: {source}")]
    Listen {
        /// Which listener.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A service principal's authority is unusable.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The TLS client configuration could not be built.
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// What both listeners' handlers share.
#[derive(Debug)]
pub struct Shared {
    configs: Vec<ProxyIdentity>,
    cache: Arc<TokenCache<Upstream>>,
    imds: Imds,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    /// Set once shutdown has begun: `/ready` fails while requests are still served.
    draining: AtomicBool,
    block_other_paths: bool,
    forward_timeout: Duration,
}

/// A proxy with both listeners bound, not serving yet.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    listener: TcpListener,
    admin_listener: TcpListener,
    ready_timeout: Duration,
    shutdown_delay: Duration,
}

/// Checks `config` and binds both listeners.
pub async fn bind(config: Config) -> Result<Proxy, BindError> {
    let Config {
        listen,
        admin_listen,
        identities,
        ready_timeout,
        block_other_paths,
        imds_endpoint,
        retry,
        cache_size,
        aad_authority,
        tls_roots,
        shutdown_delay,
    } = config;
    let configs = identities.clone();
    let identities: Arc<[Identity]> = identities
        .into_iter()
        .map(|c| Identity::new(c, &aad_authority))
        .collect::<Result<Vec<_>, _>>()?
        .into();
    // The trust store costs memory: load it only for service principals.
    let tls = match identities.iter().any(Identity::uses_aad) {
        true => Some(tls_client(tls_roots)?),
        false => None,
    };
    let metrics = Arc::new(Metrics::new());
    let imds = Imds::new(imds_endpoint);
    let upstream = Upstream::new(identities, imds.clone(), tls, retry, metrics.clone());
    let shared = Arc::new(Shared {
        configs,
        cache: TokenCache::new(upstream, cache_size),
        imds,
        metrics,
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        block_other_paths,
        forward_timeout: retry.attempt_timeout,
    });
    Ok(Proxy {
        shared,
        listener: listen_on("IMDS", listen).await?,
        admin_listener: listen_on("admin", admin_listen).await?,
        ready_timeout,
        shutdown_delay,
    })
}

fn tls_client(roots: Option<RootCertStore>) -> Result<upstream::client::Tls, BindError> {
    let roots = roots.unwrap_or_else(upstream::client::native_roots);
    if roots.is_empty() {
        warn!("no trusted CA certificates found (set SSL_CERT_FILE); Azure AD calls will fail");
    }
    Ok(upstream::client::tls_connector(roots)?)
}

async fn listen_on(what: &'static str, addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError::Listen { what, addr, source })
}

impl Proxy {
    /// Where the IMDS listener is bound.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Where the admin listener is bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then closes both listeners gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Proxy {
            shared,
            listener,
            admin_listener,
            ready_timeout,
            shutdown_delay,
        } = self;
        let (stop, stopped) = watch::channel(false);
        let warm_up = tokio::spawn(admin::warm_up(shared.clone(), ready_timeout));
        let token_shared = shared.clone();
        let draining = shared.clone();
        let imds = tokio::spawn(server::serve(
            "IMDS",
            listener,
            move |req| endpoint::handle(token_shared.clone(), req),
            stopped.clone(),
        ));
        let admin = tokio::spawn(server::serve(
            "admin",
            admin_listener,
            move |req| admin::handle(shared.clone(), req),
            stopped,
        ));
        shutdown.await;
        warm_up.abort();
        draining.draining.store(true, Ordering::Release);
        if !shutdown_delay.is_zero() {
            // The kubelet and the app see /ready fail while tokens are still served.
            info!(delay = ?shutdown_delay, "shutting down: not ready; still serving");
            tokio::time::sleep(shutdown_delay).await;
        }
        let _ = stop.send(true);
        let _ = tokio::join!(imds, admin);
    }
}

/// Runs the subcommand: a current-thread runtime (the memory budget), until SIGTERM or Ctrl-C.
pub fn main(args: ServeArgs) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (config, log_format, log) = config_from(args);
    init_logging(log_format, &log);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match bind(config).await {
            Ok(proxy) => {
                proxy.run(server::termination_signal()).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                error!(error = %e, "cannot start");
                ExitCode::FAILURE
            }
        }
    })
}

/// The configuration of `args`, destructured so that a new flag cannot be forgotten.
fn config_from(args: ServeArgs) -> (Config, LogFormat, String) {
    let ServeArgs {
        listen,
        admin_listen,
        identities,
        ready_timeout,
        shutdown_delay,
        block_other_paths,
        imds_endpoint,
        upstream_deadline,
        upstream_attempt_timeout,
        cache_size,
        aad_authority,
        log_format,
        log,
    } = args;
    let retry = RetryPolicy {
        deadline: upstream_deadline,
        attempt_timeout: upstream_attempt_timeout.min(upstream_deadline),
        ..RetryPolicy::default()
    };
    let config = Config {
        listen,
        admin_listen,
        identities,
        ready_timeout,
        block_other_paths,
        imds_endpoint,
        retry,
        cache_size,
        aad_authority,
        tls_roots: None,
        shutdown_delay,
    };
    (config, log_format, log)
}

/// Logging to stderr; `filter` is a target list (`info`, `podid_sidecar=debug,hyper=info`).
fn init_logging(format: LogFormat, filter: &str) {
    let filter: Targets = filter.parse().unwrap_or_else(|e| {
        eprintln!("podid-proxy: --log {filter:?}: {e}; using info");
        Targets::new().with_default(tracing::Level::INFO)
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Plain => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json()).try_init(),
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve(args: &[&str]) -> ServeArgs {
        let argv = ["podid-proxy", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_reach_the_configuration_with_the_contracts_defaults() {
        let (config, format, log) = config_from(serve(&[]));
        assert_eq!(config.listen, "127.0.0.1:15391".parse().unwrap());
        assert_eq!(config.admin_listen, "0.0.0.0:15392".parse().unwrap());
        assert_eq!(config.retry, RetryPolicy::default());
        assert_eq!(
            (config.cache_size, format, log.as_str()),
            (64, LogFormat::Plain, "info")
        );
        let (config, _, _) = config_from(serve(&[
            "--upstream-deadline=3s",
            "--upstream-attempt-timeout=5s",
            "--cache-size=8",
            "--aad-authority=https://login.example",
            "--identity=name=a,type=0,client-id=c",
        ]));
        assert_eq!(config.retry.deadline, Duration::from_secs(3));
        // An attempt never outlives the whole fetch.
        assert_eq!(config.retry.attempt_timeout, Duration::from_secs(3));
        assert_eq!((config.cache_size, config.identities.len()), (8, 1));
        assert_eq!(config.aad_authority, "https://login.example");
    }
}
