//! podid's mutating admission webhook: serves CONTRACT.md §3 over TLS around core's planner.

pub mod args;
pub mod certs_self;
pub mod config;
pub mod identities;
pub mod inject_cli;
pub mod metrics;
pub mod serve;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use podid_certs::{FileWatcher, ReloadingCertResolver};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use config::{Config, IdentitySource, NativeSidecars};
use identities::IdentityStore;
use metrics::Metrics;
use server::AppState;

/// Errors that stop the webhook from starting.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A listener could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The identities file is unusable.
    #[error(transparent)]
    Identities(#[from] identities::IdentitiesError),
    /// No Kubernetes client could be built or the API server did not answer.
    #[error("connecting to the Kubernetes API server: {0}")]
    Kube(#[from] kube::Error),
}

/// A webhook whose listeners are bound, ready to [`run`](Webhook::run).
#[allow(missing_debug_implementations)] // kube::Client is not Debug
pub struct Webhook {
    listener: TcpListener,
    admin: TcpListener,
    state: AppState,
    cfg: Config,
    client: Option<kube::Client>,
    certs: Option<certs_self::SelfManaged>,
}

impl Webhook {
    /// Binds the listeners, loads identities (file) or connects to the API server
    /// (cluster), and decides the sidecar layout.
    pub async fn bind(mut cfg: Config) -> Result<Self, WebhookError> {
        let (store, client, version) = match &cfg.identities {
            IdentitySource::File(path) => {
                let index = identities::load_file(path, "default")?;
                info!(path = %path.display(), identities = index.identity_count(), bindings = index.binding_count(), "identities loaded from file");
                (IdentityStore::with_index(index), None, None)
            }
            IdentitySource::Cluster => {
                let client = kube::Client::try_default().await?;
                let info = client.apiserver_version().await?;
                let version = (info.major.clone(), info.minor.clone());
                info!(major = %version.0, minor = %version.1, "connected to the API server");
                (IdentityStore::empty(), Some(client), Some(version))
            }
        };
        let certs = match (&cfg.self_managed, &client) {
            (None, _) => None,
            (Some(sm), Some(client)) => {
                Some(certs_self::SelfManaged::new(sm.clone(), client.clone()))
            }
            // Identities from a file, certificate from the cluster.
            (Some(sm), None) => Some(certs_self::SelfManaged::new(
                sm.clone(),
                kube::Client::try_default().await?,
            )),
        };
        cfg.inject.native_sidecars = native_sidecars(
            cfg.native_sidecars,
            version.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        );
        info!(
            native_sidecars = cfg.inject.native_sidecars,
            "sidecar layout decided"
        );
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| WebhookError::Bind { addr, source })
        };
        let listener = bind(cfg.listen).await?;
        let admin = bind(cfg.admin_listen).await?;
        let state = AppState {
            store: Arc::new(store),
            inject: Arc::new(cfg.inject.clone()),
            metrics: Arc::new(Metrics::new()),
            resolver: Arc::new(ReloadingCertResolver::empty()),
            max_body_bytes: cfg.max_body_bytes,
            request_timeout: cfg.request_timeout,
            draining: Arc::default(),
        };
        Ok(Self {
            listener,
            admin,
            state,
            cfg,
            client,
            certs,
        })
    }

    /// Address of the HTTPS listener.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Address of the admin listener.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self {
            listener,
            admin,
            state,
            cfg,
            client,
            certs,
        } = self;
        let draining = Arc::clone(&state.draining);
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let cert_task = match certs {
            Some(certs) => tokio::spawn(certs.run(Arc::clone(&state.resolver), stopped)),
            None => tokio::spawn(
                FileWatcher::new(Arc::clone(&state.resolver), &cfg.tls_cert, &cfg.tls_key)
                    .with_interval(cfg.tls_reload_interval)
                    .run(stopped),
            ),
        };
        let watch_task =
            client.map(|c| tokio::spawn(identities::watch_cluster(c, Arc::clone(&state.store))));
        let tls = serve::tls_acceptor(podid_certs::server_config(Arc::clone(&state.resolver)));
        let https = serve::serve(
            listener,
            Some(tls),
            server::mutate_router(state.clone()),
            stop_rx.clone(),
            cfg.shutdown_grace,
        );
        let plain = serve::serve(
            admin,
            None,
            server::admin_router(state),
            stop_rx,
            cfg.shutdown_grace,
        );
        let servers = tokio::spawn(async move { tokio::join!(https, plain) });
        shutdown.await;
        if !cfg.shutdown_delay.is_zero() {
            // Endpoint removal takes a moment to reach the API server; with failurePolicy
            // Fail, refusing connections at once would fail pod creations meanwhile.
            info!(delay = ?cfg.shutdown_delay, "shutting down: not ready; still serving");
            draining.store(true, std::sync::atomic::Ordering::Release);
            tokio::time::sleep(cfg.shutdown_delay).await;
        }
        info!("shutting down: no new connections; finishing in-flight requests");
        let _ = stop_tx.send(true);
        let _ = servers.await;
        let _ = cert_task.await;
        if let Some(task) = watch_task {
            task.abort();
        }
        info!("stopped");
    }
}

/// Decides the layout: native sidecars on Kubernetes ≥ 1.29 unless forced.
///
/// Without an API server to ask (file mode), `auto` means native: every Kubernetes
/// release still supported upstream has native sidecars.
pub fn native_sidecars(mode: NativeSidecars, version: Option<(&str, &str)>) -> bool {
    match (mode, version) {
        (NativeSidecars::Always, _) => true,
        (NativeSidecars::Never, _) => false,
        (NativeSidecars::Auto, None) => true,
        (NativeSidecars::Auto, Some((major, minor))) => {
            let number = |s: &str| {
                s.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u32>()
                    .ok()
            };
            match (number(major), number(minor)) {
                (Some(major), Some(minor)) => (major, minor) >= (1, 29),
                _ => true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_sidecars_follow_the_api_server_version_unless_forced() {
        assert!(native_sidecars(NativeSidecars::Auto, Some(("1", "29"))));
        assert!(native_sidecars(NativeSidecars::Auto, Some(("1", "31+"))));
        assert!(!native_sidecars(NativeSidecars::Auto, Some(("1", "28+"))));
        assert!(!native_sidecars(NativeSidecars::Never, Some(("1", "33"))));
        assert!(native_sidecars(NativeSidecars::Always, Some(("1", "27"))));
        assert!(native_sidecars(NativeSidecars::Auto, None));
    }
}
