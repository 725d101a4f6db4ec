//! The processes under test: the emulated IMDS and the proxy as child processes killed on drop, and the world they share.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// A child process, killed when dropped; stdout and stderr go to a log file.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

// === impl Process ===

impl Process {
    /// Starts `cmd`, logging to `<dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Result<Self, String> {
        let log = dir.join(format!("{name}.log"));
        let file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {name} ({cmd:?}): {e}"))?;
        Ok(Self {
            name: name.into(),
            child,
            log,
        })
    }

    /// Its pid (`ip netns exec` and `setpriv` exec in place, so also the program's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with its log if it has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); its log:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// Kills it and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

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
