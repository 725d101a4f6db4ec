//! The webhook started in-process on loopback, with its files in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podid_certs::testca::TestCa;
use podid_webhook::Webhook;
use podid_webhook::config::{Config, IdentitySource};
use rustls::ClientConfig;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::client::{Conn, client_config};
use super::{DEADLINE, eventually};

/// The identities of `examples/identities.yaml`: namespace `apps`, `storage-reader`,
/// `keyvault-reader`, and a binding of `storage-reader` to `aadpodidbinding: legacy-app`.
pub const IDENTITIES_YAML: &str = include_str!("../../../examples/identities.yaml");

/// Every DNS name the chart's certificate carries for the webhook Service.
pub const SANS: [&str; 4] = [
    "podid-webhook",
    "podid-webhook.podid-system",
    "podid-webhook.podid-system.svc",
    "podid-webhook.podid-system.svc.cluster.local",
];

/// A running webhook; dropping it shuts the webhook down.
#[derive(Debug)]
pub struct TestServer {
    /// HTTPS address.
    pub addr: SocketAddr,
    /// Admin (plain HTTP) address.
    pub admin: SocketAddr,
    /// The CA that signed the certificate written at start.
    pub ca: TestCa,
    /// Where the certificate is read from.
    pub cert_path: PathBuf,
    /// Where the key is read from.
    pub key_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl TestServer {
    /// Starts with defaults, a certificate in place, and waits until ready.
    pub async fn start() -> Self {
        Self::start_with(true, |_| {}).await
    }

    /// Starts with `tweak` applied to the configuration; writes the certificate and
    /// waits for readiness only when `write_cert` is true.
    pub async fn start_with(write_cert: bool, tweak: impl FnOnce(&mut Config)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let identities = dir.path().join("identities.yaml");
        std::fs::write(&identities, IDENTITIES_YAML).expect("write identities");
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let ca = TestCa::new();
        if write_cert {
            write_pair(&cert_path, &key_path, &ca.leaf(&SANS));
        }
        let mut cfg = Config::new(
            cert_path.clone(),
            key_path.clone(),
            IdentitySource::File(identities),
        );
        cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        cfg.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        cfg.tls_reload_interval = Duration::from_millis(50);
        cfg.shutdown_grace = Duration::from_secs(30);
        tweak(&mut cfg);
        let webhook = Webhook::bind(cfg).await.expect("webhook binds");
        let addr = webhook.local_addr().expect("listen address");
        let admin = webhook.admin_addr().expect("admin address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(webhook.run(async move {
            let _ = stopped.await;
        }));
        let server = Self {
            addr,
            admin,
            ca,
            cert_path,
            key_path,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        };
        if write_cert {
            server.wait_ready().await;
        }
        server
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self) {
        let admin = self.admin;
        eventually("webhook ready", || async move {
            let mut conn = Conn::plain(admin).await.ok()?;
            let reply = conn.request(http::Method::GET, "/readyz", super::client::empty());
            (reply.await.ok()?.status == http::StatusCode::OK).then_some(())
        })
        .await;
    }

    /// A client trusting only this server's CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        client_config(&[&self.ca])
    }

    /// A new TLS connection, as the API server opens one.
    pub async fn connect(&self) -> Conn {
        Conn::tls(self.addr, self.client_config())
            .await
            .expect("TLS connection to the webhook")
    }

    /// A new connection to the admin port.
    pub async fn connect_admin(&self) -> Conn {
        Conn::plain(self.admin)
            .await
            .expect("connection to the admin port")
    }

    /// Triggers shutdown (the `run` future's argument).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `run` to return after [`shutdown`](Self::shutdown).
    pub async fn stopped(&mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("webhook stops within the deadline")
                .expect("webhook task does not panic");
        }
    }
}

/// Writes a certificate and key the way a careless tool would: in place, one after the other.
pub fn write_pair(cert_path: &Path, key_path: &Path, (cert, key): &(String, String)) {
    std::fs::write(cert_path, cert).expect("write certificate");
    std::fs::write(key_path, key).expect("write key");
}
