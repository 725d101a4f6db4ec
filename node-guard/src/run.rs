//! Wires the guard: pod source → syncer → nftables; responder, Events and admin beside it; the uninstall decision at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::args::{Config, Source};
use crate::events::{self, LogSink};
use crate::kube::{KubeEvents, daemonset_is_going, watch_pods};
use crate::metrics::Metrics;
use crate::nft::{NftCommand, cleanup};
use crate::responder::{self, ResponderState};
use crate::sync::{SharedSet, Syncer};

/// Why the guard could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not bind (another process holds the host port?).
    #[error("binding the {what} on {addr}: {source}")]
    Bind {
        /// `responder` or `admin server`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No Kubernetes client (in-cluster config or kubeconfig).
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { what, addr, source })
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs the guard until `shutdown`; then removes the rules only if the guard's DaemonSet is going away.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let Config {
        source,
        policy,
        rules,
        responder_listen,
        admin_listen,
        resync_interval,
        event_interval,
        pod_name,
        nft,
    } = config;
    let (metrics, registry) = Metrics::new();
    let shared = SharedSet::default();
    let synced = Arc::new(AtomicBool::new(false));
    let responder_listener = bind("responder", responder_listen).await?;
    let admin_listener = bind("admin server", admin_listen).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (pods_tx, pods_rx) = watch::channel(None);
    let (events_tx, events_rx) = mpsc::channel(256);

    let client = match &source {
        Source::Kube { node, .. } => {
            let client = kube::Client::try_default().await?;
            tokio::spawn(watch_pods(
                client.clone(),
                node.clone(),
                policy,
                metrics.clone(),
                pods_tx,
            ));
            let sink = KubeEvents::new(client.clone(), pod_name);
            tokio::spawn(events::run(
                sink,
                event_interval,
                metrics.clone(),
                events_rx,
            ));
            Some(client)
        }
        Source::File { path, poll } => {
            let (path, poll) = (path.clone(), *poll);
            tokio::spawn(crate::file::watch_file(
                path,
                poll,
                policy,
                metrics.clone(),
                pods_tx,
            ));
            tokio::spawn(events::run(
                LogSink,
                event_interval,
                metrics.clone(),
                events_rx,
            ));
            None
        }
    };
    let state = ResponderState {
        shared: shared.clone(),
        metrics: metrics.clone(),
        events: events_tx,
    };
    let responder = tokio::spawn(responder::serve(
        responder_listener,
        state,
        stopped(stop_rx.clone()),
    ));
    let admin_state = AdminState {
        synced: synced.clone(),
        registry: Arc::new(registry),
    };
    let admin_server = tokio::spawn(async move {
        axum::serve(admin_listener, admin::router(admin_state))
            .with_graceful_shutdown(stopped(stop_rx))
            .await
    });
    info!(table = %rules.table, responder = %responder_listen, admin = %admin_listen, "node guard started");
    let syncer = Syncer::new(
        NftCommand::new(&nft),
        rules.clone(),
        metrics,
        shared,
        synced,
    );
    syncer.drive(pods_rx, resync_interval, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = tokio::join!(responder, admin_server);
    if let (
        Source::Kube {
            daemonset: Some((namespace, name)),
            ..
        },
        Some(client),
    ) = (&source, client)
    {
        uninstall_if_deleted(client, namespace, name, &nft, &rules.table).await;
    } else {
        info!(table = %rules.table, "stopping; the rules stay in place (`podid-node-guard cleanup` removes them)");
    }
    Ok(())
}

/// Removes the rules when the DaemonSet is gone or being deleted; keeps them
/// otherwise, and when the API server cannot say (fail closed).
async fn uninstall_if_deleted(
    client: kube::Client,
    namespace: &str,
    name: &str,
    nft: &std::path::Path,
    table: &str,
) {
    match daemonset_is_going(client, namespace, name).await {
        Ok(true) => match cleanup(nft, table).await {
            Ok(done) => info!(daemonset = %name, "{done}"),
            Err(e) => {
                warn!(error = %e, "DaemonSet deleted but the rules could not be removed; run `podid-node-guard cleanup`")
            }
        },
        Ok(false) => {
            info!(daemonset = %name, "DaemonSet still there (rolling update): rules kept for the next guard")
        }
        Err(e) => {
            warn!(error = %e, "cannot tell whether the DaemonSet is being deleted; rules kept")
        }
    }
}

/// SIGTERM (the kubelet) or Ctrl-C.
pub async fn termination_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
