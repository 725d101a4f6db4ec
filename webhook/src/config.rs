//! The webhook's typed configuration; `main` builds it from flags, tests by hand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use podid_core::inject::InjectConfig;

pub use crate::certs_self::SelfManagedConfig;

/// Whether the proxy is placed as a native sidecar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NativeSidecars {
    /// Native on Kubernetes ≥ 1.29 (asked of the API server at start-up), legacy below.
    #[default]
    Auto,
    /// Always native.
    Always,
    /// Always legacy.
    Never,
}

/// Where identity objects come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// A kube-runtime watch of the cluster's AzureIdentity and AzureIdentityBinding objects.
    Cluster,
    /// A multi-document YAML file, read once at start-up.
    File(PathBuf),
}

/// Everything the webhook server needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// HTTPS address for `/mutate`.
    pub listen: SocketAddr,
    /// Plain-HTTP address for `/healthz`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    /// PEM certificate chain file (unused when `self_managed` is set).
    pub tls_cert: PathBuf,
    /// PEM private key file.
    pub tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    pub tls_reload_interval: Duration,
    /// Identity objects' source.
    pub identities: IdentitySource,
    /// Native-sidecar mode; `Auto` is resolved at start-up.
    pub native_sidecars: NativeSidecars,
    /// Injection settings (its `native_sidecars` is overwritten from the mode above).
    pub inject: InjectConfig,
    /// Largest request body accepted (the API server's own limit is 3 MiB).
    pub max_body_bytes: usize,
    /// Deadline for reading and answering one request.
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How long to keep serving, not ready, after the shutdown signal before refusing connections.
    pub shutdown_delay: Duration,
    /// Issue and rotate the serving certificate in a Secret instead of reading files.
    pub self_managed: Option<SelfManagedConfig>,
}

impl Config {
    /// Defaults for everything but the certificate paths and identity source.
    pub fn new(tls_cert: PathBuf, tls_key: PathBuf, identities: IdentitySource) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], podid_core::names::WEBHOOK_PORT)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], podid_core::names::WEBHOOK_ADMIN_PORT)),
            tls_cert,
            tls_key,
            tls_reload_interval: Duration::from_secs(1),
            identities,
            native_sidecars: NativeSidecars::Auto,
            inject: InjectConfig::default(),
            max_body_bytes: 3 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(20),
            shutdown_delay: Duration::ZERO,
            self_managed: None,
        }
    }
}
