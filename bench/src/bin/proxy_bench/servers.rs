//! The processes under test: the emulated IMDS and the proxy as child processes killed on drop, and the world they share.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::load::Conn;

/// The client id of the one identity the emulated VM carries and the proxy serves.
pub const CLIENT_ID: &str = "00000000-0000-0000-0000-00000000be0c";

/// What an app asks for: a token for ARM, naming the identity by client id.
pub fn token_path() -> String {
    format!(
        "/metadata/identity/oauth2/token?api-version=2018-02-01\
         &resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id={CLIENT_ID}"
    )
}

/// A child process, killed when dropped; stdout and stderr go to a log file
/// (the end-to-end tests' own, so both kill and report the same way).
pub use podid_e2e::proc::Daemon as Process;

/// The emulator's world: one VM carrying the one identity.
pub fn write_world(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("world.yaml");
    let text = format!(
        "identities:\n  - {{name: bench, clientId: {CLIENT_ID}}}\n\
         vms:\n  - name: vm0\n    identities: [bench]\n"
    );
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The emulator's command line, without throttling (Azure's 20/s and 5 concurrent would be the bottleneck).
pub fn emulator_command(mut cmd: Command, world: &Path, imds: SocketAddr) -> Command {
    cmd.arg("--identities").arg(world);
    cmd.arg("--vm").arg(format!("name=vm0,listen={imds}"));
    cmd.args(["--imds-rate", "0", "--imds-concurrency", "0"]);
    cmd.args(["--imds-metadata-rate", "0"]);
    cmd
}

/// `podid-proxy serve` for the bench identity (type 0: a managed identity through IMDS).
pub fn proxy_args(listen: SocketAddr, admin: SocketAddr, imds: SocketAddr) -> Vec<String> {
    vec![
        "serve".into(),
        format!("--listen={listen}"),
        format!("--admin-listen={admin}"),
        format!("--identity=name=bench,type=0,client-id={CLIENT_ID}"),
        format!("--imds-endpoint={imds}"),
    ]
}

/// A loopback address with a port nothing listens on right now.
pub fn free_addr() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Polls `GET path` on `addr` until it answers 200, while `process` runs.
pub fn wait_for_200(
    process: &mut Process,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        process.check_running()?;
        let status = Conn::connect(addr, path).and_then(|mut c| c.get());
        if let Ok(200) = status {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{addr}{path} did not answer 200 in {timeout:?}: {status:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
