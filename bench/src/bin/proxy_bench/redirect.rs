//! Targets through a pod's network namespace (root only): the emulated IMDS on 169.254.169.254:80 in a node namespace, and in the pod namespace podid-init's iptables REDIRECT and the proxy as uid 1501, as tests/e2e builds them.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use podid_core::names::{PROXY_ADMIN_PORT, PROXY_PORT};
use podid_e2e::netns::Topology;
use podid_e2e::proc::as_uid;

use crate::artifacts::Artifacts;
use crate::load::{self, Launch};
use crate::servers::{Process, emulator_command, proxy_args, token_path};

/// The proxy's uid: podid-init exempts it from the redirect.
const PROXY_UID: u32 = 1501;
/// The app's uid: redirected.
const APP_UID: u32 = 1000;

/// The node and pod namespaces with IMDS, the redirect and the proxy running.
/// Fields drop in order: processes first, then the namespaces, then the staged files.
#[derive(Debug)]
pub struct RedirectEnv {
    proxy: Option<Process>,
    emulator: Process,
    topo: Topology,
    bench: PathBuf,
    proxy_bin: PathBuf,
    _staging: tempfile::TempDir,
}

/// Why (c) did not run, when not root.
pub fn skip_reason() -> Option<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    (euid != Some("0")).then_some(
        "not root: (c) needs network namespaces (ip netns) and iptables rules; run as root (CI does)",
    )
}

fn imds() -> SocketAddr {
    SocketAddr::from(([169, 254, 169, 254], 80))
}

fn proxy_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

// === impl RedirectEnv ===

impl RedirectEnv {
    /// Builds the namespaces, starts IMDS, installs the redirect, starts the proxy and waits until it is ready.
    pub fn start(artifacts: &Artifacts, world: &Path, dir: &Path) -> Result<Self, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        // uid 1501 and 1000 must be able to run the programs wherever the work tree is.
        let staging = stage(&[&artifacts.proxy, &me])?;
        let topo = Topology::new("bench")?;
        let cmd = emulator_command(topo.node.command(&artifacts.emulator), world, imds());
        let emulator = Process::spawn("netns-emulator", cmd, dir)?;
        let mut env = Self {
            proxy: None,
            emulator,
            topo,
            bench: staging.path().join(me.file_name().unwrap_or_default()),
            proxy_bin: staging
                .path()
                .join(artifacts.proxy.file_name().unwrap_or_default()),
            _staging: staging,
        };
        env.wait_for_200(&env.launch(PROXY_UID, imds()), &token_path())?;
        env.install_redirect()?;
        env.check_redirected()?;
        let setpriv = as_uid(PROXY_UID);
        let mut cmd = env.topo.pod.command(&setpriv[0]);
        cmd.args(&setpriv[1..]).arg(&env.proxy_bin);
        cmd.args(proxy_args(
            proxy_addr(PROXY_PORT),
            proxy_addr(PROXY_ADMIN_PORT),
            imds(),
        ));
        env.proxy = Some(Process::spawn("netns-proxy", cmd, dir)?);
        env.wait_for_200(&env.launch(APP_UID, proxy_addr(PROXY_ADMIN_PORT)), "/ready")?;
        Ok(env)
    }

    /// The three targets seen from the pod: IMDS directly (as the proxy's
    /// uid, which the redirect exempts), the proxy on loopback, and the
    /// proxy through the redirect.
    pub fn targets(&self) -> [(&'static str, Launch); 3] {
        [
            ("(a′) pod → IMDS over veth", self.launch(PROXY_UID, imds())),
            (
                "(b′) pod → proxy (loopback)",
                self.launch(APP_UID, proxy_addr(PROXY_PORT)),
            ),
            ("(c) pod → REDIRECT → proxy", self.launch(APP_UID, imds())),
        ]
    }

    /// The pids of the proxy and the emulator in the namespaces.
    pub fn pids(&self) -> Vec<u32> {
        let proxy = self.proxy.as_ref().map(Process::pid);
        proxy.into_iter().chain([self.emulator.pid()]).collect()
    }

    /// A load child in the pod namespace as `uid`.
    fn launch(&self, uid: u32, addr: SocketAddr) -> Launch {
        let mut argv: Vec<OsString> = ["ip", "netns", "exec", self.topo.pod.name()]
            .map(OsString::from)
            .to_vec();
        argv.extend(as_uid(uid).into_iter().map(OsString::from));
        argv.push(self.bench.clone().into());
        Launch { argv, addr }
    }

    /// `podid-proxy init` in the pod namespace, as root.
    fn install_redirect(&self) -> Result<(), String> {
        let mut cmd = self.topo.pod.command(&self.proxy_bin);
        cmd.args([
            "init",
            "--proxy-uid",
            &PROXY_UID.to_string(),
            "--proxy-port",
            &PROXY_PORT.to_string(),
        ]);
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "podid-proxy init failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// With the redirect and no proxy yet, the app's connection to IMDS is refused:
    /// so (c) measures the redirect, not a path around it.
    fn check_redirected(&self) -> Result<(), String> {
        let got = load::run(&self.launch(APP_UID, imds()), &token_path(), 1, 1)?;
        match &got.first_error {
            Some(e) if e.contains("refused") => Ok(()),
            _ => Err(format!("the app's IMDS traffic is not redirected: {got:?}")),
        }
    }

    fn wait_for_200(&mut self, launch: &Launch, path: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(proxy) = self.proxy.as_mut() {
                proxy.check_running()?;
            }
            let got = load::run(launch, path, 1, 1)?;
            if got.errors == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{}{path} never answered 200: {got:?}", launch.addr));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Copies `files` into a fresh directory every uid can read and run.
fn stage(files: &[&Path]) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("podid-proxy-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open.clone()).map_err(|e| e.to_string())?;
    for file in files {
        let name = file.file_name().ok_or("a binary without a name")?;
        let to = dir.path().join(name);
        std::fs::copy(file, &to).map_err(|e| format!("{}: {e}", file.display()))?;
        std::fs::set_permissions(&to, open.clone()).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}
