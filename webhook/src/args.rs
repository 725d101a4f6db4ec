//! Command-line flags shared by `podid-webhook` and `podid inject`, each also settable by `PODID_*`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use podid_core::duration::parse_duration;
use podid_core::inject::{InjectConfig, PodsWithoutIdentity};
use podid_core::proxy_config::ProxySettings;
use podid_core::selector::LabelSelector;
use serde_json::Value;

use crate::config::{Config, IdentitySource, NativeSidecars, SelfManagedConfig};

/// `--pods-without-identity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PodsWithoutIdentityArg {
    /// Inject a proxy that refuses every token request.
    Protect,
    /// Leave such pods alone.
    Skip,
}

/// How pods are injected: the flags that reach [`InjectConfig`].
#[derive(Args, Clone, Debug)]
pub struct InjectArgs {
    /// Image of the injected podid-init and podid-proxy containers.
    #[arg(long, env = "PODID_PROXY_IMAGE", default_value_t = InjectConfig::default().image)]
    pub proxy_image: String,
    /// imagePullPolicy of the injected containers (the cluster's default when unset).
    #[arg(long, env = "PODID_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: Option<String>,
    /// Proxy as a native sidecar: auto (Kubernetes ≥ 1.29), always or never.
    #[arg(long, env = "PODID_NATIVE_SIDECARS", value_enum, default_value_t = NativeSidecars::Auto)]
    pub native_sidecars: NativeSidecars,
    /// Pods naming no identity: protect (inject a proxy that refuses every token) or skip.
    #[arg(long, env = "PODID_PODS_WITHOUT_IDENTITY", value_enum, default_value_t = PodsWithoutIdentityArg::Protect)]
    pub pods_without_identity: PodsWithoutIdentityArg,
    /// Deny, instead of warn about, privileged or NET_ADMIN containers in pods with identities.
    #[arg(long, env = "PODID_STRICT")]
    pub strict: bool,
    /// Label selector of pods never injected; repeat the flag, or separate with ';' in the variable.
    #[arg(long = "exception", env = "PODID_EXCEPTIONS", value_delimiter = ';', value_parser = LabelSelector::parse)]
    pub exceptions: Vec<LabelSelector>,
    /// Namespace podid is installed in; never injected.
    #[arg(long, env = "PODID_RELEASE_NAMESPACE")]
    pub release_namespace: Option<String>,
    /// How long the proxy's /ready waits for the default identity's token before giving up.
    #[arg(long, env = "PODID_PROXY_READY_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub proxy_ready_timeout: Duration,
    /// Refuse IMDS paths other than the token endpoint instead of forwarding them.
    #[arg(long, env = "PODID_BLOCK_IMDS_PATHS")]
    pub block_imds_paths: bool,
    /// `resources` of podid-proxy, as JSON.
    #[arg(long, env = "PODID_PROXY_RESOURCES", value_parser = parse_json_object)]
    pub proxy_resources: Option<Value>,
    /// `resources` of podid-init, as JSON.
    #[arg(long, env = "PODID_INIT_RESOURCES", value_parser = parse_json_object)]
    pub init_resources: Option<Value>,
}

impl InjectArgs {
    /// The injection settings; `native` is the resolved layout.
    pub fn to_config(&self, native: bool) -> InjectConfig {
        let Self {
            proxy_image,
            image_pull_policy,
            native_sidecars: _,
            pods_without_identity,
            strict,
            exceptions,
            release_namespace,
            proxy_ready_timeout,
            block_imds_paths,
            proxy_resources,
            init_resources,
        } = self.clone();
        let defaults = InjectConfig::default();
        InjectConfig {
            image: proxy_image,
            image_pull_policy,
            native_sidecars: native,
            pods_without_identity: match pods_without_identity {
                PodsWithoutIdentityArg::Protect => PodsWithoutIdentity::Protect,
                PodsWithoutIdentityArg::Skip => PodsWithoutIdentity::Skip,
            },
            strict,
            exceptions,
            excluded_namespaces: release_namespace.into_iter().collect(),
            proxy: ProxySettings {
                ready_timeout_secs: u32::try_from(proxy_ready_timeout.as_secs())
                    .unwrap_or(u32::MAX),
                block_other_paths: block_imds_paths,
            },
            proxy_resources: proxy_resources.unwrap_or(defaults.proxy_resources),
            init_resources: init_resources.unwrap_or(defaults.init_resources),
        }
    }
}

/// The self-managed serving certificate (the chart's `certs.mode: self`).
#[derive(Args, Clone, Debug)]
pub struct SelfCertArgs {
    /// Issue and rotate the serving certificate in this Secret of --release-namespace, keeping the webhook configuration's caBundle in step; --tls-cert and --tls-key are then ignored.
    #[arg(long, env = "PODID_CERT_SECRET", requires_all = ["webhook_config_name", "service_name"])]
    pub cert_secret: Option<String>,
    /// MutatingWebhookConfiguration whose caBundle is kept in step (with --cert-secret).
    #[arg(long, env = "PODID_WEBHOOK_CONFIG_NAME", requires = "cert_secret")]
    pub webhook_config_name: Option<String>,
    /// Service the API server calls the webhook through, in --release-namespace; names the serving certificate (with --cert-secret).
    #[arg(long, env = "PODID_SERVICE_NAME", requires = "cert_secret")]
    pub service_name: Option<String>,
    /// How often the certificate Secret and the webhook configuration are checked (with --cert-secret).
    #[arg(long, env = "PODID_CERT_CHECK_INTERVAL", value_parser = parse_duration, default_value = "30s")]
    pub cert_check_interval: Duration,
}

impl SelfCertArgs {
    /// The self-managed certificate settings, if --cert-secret is set; the
    /// Secret and Service live in `namespace` (the client's default when `None`).
    pub fn to_config(&self, namespace: Option<String>) -> Option<SelfManagedConfig> {
        let Self {
            cert_secret,
            webhook_config_name,
            service_name,
            cert_check_interval,
        } = self.clone();
        Some(SelfManagedConfig {
            secret: cert_secret?,
            webhook_config: webhook_config_name?,
            service: service_name?,
            namespace,
            check_interval: cert_check_interval,
            policy: podid_certs::RotationPolicy::default(),
        })
    }
}

/// Flags of the `podid-webhook` server.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "podid-webhook",
    version,
    about = "podid's mutating admission webhook"
)]
pub struct WebhookArgs {
    /// HTTPS address serving POST /mutate.
    #[arg(long, env = "PODID_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Plain-HTTP address serving /healthz, /readyz and /metrics.
    #[arg(long, env = "PODID_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    /// PEM certificate chain for the serving certificate (reloaded when it changes).
    #[arg(long, env = "PODID_TLS_CERT", default_value = "/etc/podid/tls/tls.crt")]
    pub tls_cert: PathBuf,
    /// PEM private key of the serving certificate (reloaded when it changes).
    #[arg(long, env = "PODID_TLS_KEY", default_value = "/etc/podid/tls/tls.key")]
    pub tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "PODID_TLS_RELOAD_INTERVAL", value_parser = parse_duration, default_value = "1s")]
    pub tls_reload_interval: Duration,
    /// Read AzureIdentity / AzureIdentityBinding objects from this YAML file instead of watching the cluster.
    #[arg(long, env = "PODID_IDENTITIES_FILE")]
    pub identities_file: Option<PathBuf>,
    /// Largest AdmissionReview body accepted, in bytes.
    #[arg(long, env = "PODID_MAX_BODY_BYTES", default_value_t = 3 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Deadline for reading and answering one request.
    #[arg(long, env = "PODID_REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "PODID_SHUTDOWN_GRACE", value_parser = parse_duration, default_value = "20s")]
    pub shutdown_grace: Duration,
    /// After SIGTERM, keep serving (with /readyz failing) this long before refusing
    /// connections, while the API server learns the endpoint is gone.
    #[arg(long, env = "PODID_SHUTDOWN_DELAY", value_parser = parse_duration, default_value = "0s")]
    pub shutdown_delay: Duration,
    /// Log format.
    #[arg(long, env = "PODID_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "PODID_LOG", default_value = "info")]
    pub log: String,
    /// Injection settings.
    #[command(flatten)]
    pub inject: InjectArgs,
    /// Self-managed certificate.
    #[command(flatten)]
    pub certs: SelfCertArgs,
}

impl WebhookArgs {
    /// The server configuration these flags describe.
    pub fn to_config(&self) -> Config {
        let Self {
            listen,
            admin_listen,
            tls_cert,
            tls_key,
            tls_reload_interval,
            identities_file,
            max_body_bytes,
            request_timeout,
            shutdown_grace,
            shutdown_delay,
            log_format: _,
            log: _,
            inject,
            certs,
        } = self.clone();
        let identities = identities_file.map_or(IdentitySource::Cluster, IdentitySource::File);
        let mut cfg = Config::new(tls_cert, tls_key, identities);
        cfg.listen = listen;
        cfg.admin_listen = admin_listen;
        cfg.tls_reload_interval = tls_reload_interval;
        cfg.native_sidecars = inject.native_sidecars;
        cfg.inject = inject.to_config(true);
        cfg.max_body_bytes = max_body_bytes;
        cfg.request_timeout = request_timeout;
        cfg.shutdown_grace = shutdown_grace;
        cfg.shutdown_delay = shutdown_delay;
        cfg.self_managed = certs.to_config(inject.release_namespace.clone());
        cfg
    }
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object a line.
    Json,
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

fn parse_json_object(s: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("expected a JSON object such as {\"requests\":{\"cpu\":\"5m\"}}".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}
