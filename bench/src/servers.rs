//! The two servers under test, each run in a child process of its own: podid's webhook and a bare
//! axum + rustls server that answers every request with a canned AdmissionReview.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use podid_certs::ReloadingCertResolver;
use podid_webhook::Webhook;
use podid_webhook::config::{Config, IdentitySource, NativeSidecars};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Same as podid's accept loop: slow handshakes and request heads are dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which server a child process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// Bare axum + rustls, canned answer.
    Bare,
    /// podid's webhook.
    Podid,
}

impl Server {
    /// Name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Podid => "podid",
        }
    }
}

/// Files both servers read: the serving certificate and key, podid's identities, the canned answer.
#[derive(Clone, Debug)]
pub struct ServerFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
    /// podid's identities file.
    pub identities: PathBuf,
    /// The bare server's answer.
    pub response: PathBuf,
}

/// A server child process; it exits when its stdin closes, so dropping this stops it.
#[derive(Debug)]
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Running {
    /// Starts `server` by running this binary again with a `serve-*` subcommand.
    pub fn start(server: Server, files: &ServerFiles) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut cmd = Command::new(exe);
        match server {
            Server::Bare => cmd.arg("serve-bare").arg("--response").arg(&files.response),
            Server::Podid => cmd
                .arg("serve-podid")
                .arg("--identities")
                .arg(&files.identities),
        };
        cmd.arg("--cert")
            .arg(&files.cert)
            .arg("--key")
            .arg(&files.key);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the server process")?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let addr = line
            .trim()
            .parse()
            .with_context(|| format!("{} server printed {line:?}, not its address", server.name()));
        match addr {
            Ok(addr) => Ok(Self { child, stdin, addr }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Give it a moment to see EOF and exit by itself; then make sure.
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both children run on the same runtime flavour: multi-thread, one worker per core.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Prints the bound address on stdout for the parent, then exits when stdin closes.
fn announce_and_watch_parent(addr: SocketAddr) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{addr}")?;
    out.flush()?;
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    Ok(())
}

/// `serve-podid`: podid's webhook as `podid-webhook` runs it, identities from a file.
pub fn serve_podid(cert: &Path, key: &Path, identities: &Path) -> anyhow::Result<()> {
    let mut cfg = Config::new(
        cert.to_path_buf(),
        key.to_path_buf(),
        IdentitySource::File(identities.to_path_buf()),
    );
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.native_sidecars = NativeSidecars::Always;
    runtime()?.block_on(async move {
        let webhook = Webhook::bind(cfg).await?;
        announce_and_watch_parent(webhook.local_addr()?)?;
        webhook.run(std::future::pending()).await;
        Ok(())
    })
}

/// `serve-bare`: the practical limit of axum + rustls + hyper, with the same TLS config as podid.
pub fn serve_bare(cert: &Path, key: &Path, response: &Path) -> anyhow::Result<()> {
    let canned = Bytes::from(std::fs::read(response).context("reading the canned answer")?);
    let certified = podid_certs::certified_key_from_pem(
        cert,
        &std::fs::read(cert)?,
        key,
        &std::fs::read(key)?,
    )?;
    let resolver = Arc::new(ReloadingCertResolver::new(certified));
    let tls = TlsAcceptor::from(Arc::new(podid_certs::server_config(resolver)));
    let router = Router::new().route(
        podid_core::names::WEBHOOK_PATH,
        post(move |_body: Bytes| {
            let canned = canned.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], canned) }
        }),
    );
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        announce_and_watch_parent(listener.local_addr()?)?;
        accept_loop(listener, tls, router).await
    })
}

/// The shape of podid's accept loop (TCP_NODELAY, TLS, hyper http1 keep-alive) without its
/// graceful-shutdown bookkeeping.
async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    router: Router,
) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => bail!("accept: {e}"),
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await
            else {
                return;
            };
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .keep_alive(true);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
