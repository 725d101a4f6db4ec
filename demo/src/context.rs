//! What every step shares: the programs, the demo's directory, addresses, certificates; and the small waits they use.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use podid_e2e::bins::Bins;
use podid_e2e::proc::Daemon;

use crate::tls::Material;

/// The demo's shared state.
#[derive(Debug)]
pub struct Ctx {
    /// Where files and logs go (removed at the end).
    pub dir: PathBuf,
    /// podid-proxy, the stand-in, podid-e2e-http, the SDK clients.
    pub bins: &'static Bins,
    /// `podid-webhook`.
    pub webhook: PathBuf,
    /// `podid-controller`.
    pub controller: PathBuf,
    /// IMDS of the VM: 169.254.169.254:80 in the node namespace, or a loopback port.
    pub imds: SocketAddr,
    /// The stand-in's Entra ID (https://localhost:PORT).
    pub aad: SocketAddr,
    /// The stand-in's ARM (https://localhost:PORT).
    pub arm: SocketAddr,
    /// Certificates.
    pub material: Material,
}

impl Ctx {
    /// Writes `text` to `name` in the demo directory.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// A loopback address with a port nobody listens on now.
pub fn free_port() -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Polls `probe` every 50 ms until it gives a value, `daemon` exits, or `timeout` passes.
pub async fn until<T, F: Future<Output = Option<T>>>(
    what: &str,
    daemon: &mut Daemon,
    timeout: Duration,
    mut probe: impl FnMut() -> F,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        daemon.check_running()?;
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what}: not within {timeout:?}; its log:\n{}",
                tail(&daemon.log(), 20)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether something accepts TCP connections on `addr`.
pub async fn listening(addr: SocketAddr) -> Option<()> {
    let connect = tokio::net::TcpStream::connect(addr);
    match tokio::time::timeout(Duration::from_secs(1), connect).await {
        Ok(Ok(_)) => Some(()),
        _ => None,
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A program beside this one (`target/<profile>/NAME`), or an error naming the build to run.
pub fn program(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run `make demo` (it builds every program first)",
            path.display()
        ))
    }
}
