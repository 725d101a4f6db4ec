//! One pod on one node: the emulated IMDS in the node namespace, and in the pod namespace the redirect and the proxy exactly as the webhook renders them.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::Bins;
use crate::http::{RawOutcome, RawRequest};
use crate::netns::{IMDS_IP, Topology};
use crate::proc::{Daemon, as_uid, run_bounded};
use crate::world::{self, Rendered};

/// The ordinary uid apps run as.
pub const APP_UID: u32 = 1000;
/// How long an SDK client may take (they retry some failures with backoff).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// IMDS as the pod addresses it.
pub fn imds() -> SocketAddr {
    SocketAddr::from(([169, 254, 169, 254], 80))
}

/// An SDK conformance client (tests/clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sdk {
    /// azure-identity (PyPI).
    Python,
    /// @azure/identity (npm).
    Node,
    /// azure_identity (Rust).
    Rust,
}

/// What an SDK client printed.
#[derive(Clone, Debug)]
pub struct SdkResult {
    /// Its JSON line (`ok`, `claims` or `error`/`message`).
    pub json: Value,
    /// Whether it exited 0.
    pub success: bool,
    /// Its stderr, for failure messages.
    pub stderr: String,
}

/// The running world. Fields drop in order: proxy, emulator, namespaces, files.
#[derive(Debug)]
pub struct PodEnv {
    proxy: Option<Daemon>,
    emulator: Daemon,
    /// The node and pod namespaces.
    pub topo: Topology,
    /// What runs.
    pub bins: &'static Bins,
    /// podid-init as the webhook rendered it.
    pub init: Rendered,
    /// podid-proxy as the webhook rendered it.
    pub serve: Rendered,
    home: PathBuf,
    dir: tempfile::TempDir,
}

// === impl PodEnv ===

impl PodEnv {
    /// Renders the pod with `podid inject`, builds the namespaces and starts the emulated IMDS.
    pub fn start(tag: &str, bins: &'static Bins) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("podid-e2e-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text)
                .map(|()| path)
                .map_err(|e| e.to_string())
        };
        let pod = write("pod.yaml", world::pod_manifest())?;
        let objects = write("identities.yaml", world::identity_objects())?;
        let azure = write("azure.yaml", world::emulator_world())?;
        let home = dir.path().join("home");
        std::fs::create_dir(&home).map_err(|e| e.to_string())?;
        let open = std::fs::Permissions::from_mode(0o1777);
        for path in [dir.path(), &home] {
            std::fs::set_permissions(path, open.clone()).map_err(|e| e.to_string())?;
        }
        let injected = inject(bins, &pod, &objects)?;
        let init = world::rendered(&injected, "podid-init")?;
        let serve = world::rendered(&injected, "podid-proxy")?;
        for c in [&init, &serve] {
            if !c.argv.first().is_some_and(|p| p.ends_with("/podid-proxy")) {
                return Err(format!(
                    "the webhook no longer runs podid-proxy: {:?}",
                    c.argv
                ));
            }
        }
        let topo = Topology::new(tag)?;
        let mut cmd = topo.node.command(&bins.emulator);
        cmd.arg("--identities").arg(&azure);
        cmd.args([
            "--imds-listen",
            &format!("{IMDS_IP}:80"),
            "--imds-rate=0",
            "--imds-concurrency=0",
        ]);
        let emulator = Daemon::spawn("emulator", cmd, dir.path())?;
        let mut env = Self {
            proxy: None,
            emulator,
            topo,
            bins,
            init,
            serve,
            home,
            dir,
        };
        env.wait_for_imds()?;
        Ok(env)
    }

    fn wait_for_imds(&mut self) -> Result<(), String> {
        let probe = [RawRequest::imds("/metadata/versions")];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.emulator.check_running()?;
            let mut cmd = self.topo.node.command(&self.bins.http);
            cmd.arg(imds().to_string());
            if http_outcomes(cmd, &probe)?
                .iter()
                .all(|o| o.status().is_some())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the emulated IMDS did not answer; its log:\n{}",
                    self.emulator.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs podid-init in the pod: the rendered command line, as the rendered
    /// uid, with only the rendered capabilities.
    pub fn install_redirect(&self) -> Result<Output, String> {
        let mut cmd = self.topo.pod.command("setpriv");
        let uid = self.init.uid.to_string();
        let caps: String = self.init.caps.iter().map(|c| format!(",+{c}")).collect();
        cmd.args([
            "--reuid",
            &uid,
            "--regid",
            &uid,
            "--clear-groups",
            "--inh-caps=-all",
        ]);
        cmd.arg(format!("--bounding-set=-all{caps}"));
        cmd.arg(&self.bins.proxy).args(&self.init.argv[1..]);
        run_bounded(cmd, None, Duration::from_secs(30))
    }

    /// Starts the proxy as the webhook renders it and waits for its `/ready`.
    pub fn start_proxy(&mut self) -> Result<(), String> {
        let mut cmd = self.topo.pod.command("setpriv");
        cmd.args(as_uid(self.serve.uid)).arg("env").arg("-i");
        cmd.args(self.serve.env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.arg(&self.bins.proxy).args(&self.serve.argv[1..]);
        self.proxy = Some(Daemon::spawn("proxy", cmd, self.dir.path())?);
        let ready = [RawRequest {
            method: "GET".into(),
            target: "/ready".into(),
            headers: vec![],
        }];
        let admin = SocketAddr::from(([127, 0, 0, 1], 15392));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(proxy) = self.proxy.as_mut() {
                proxy.check_running()?;
            }
            if self.raw(APP_UID, admin, &ready)?[0].status() == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the proxy never reported ready; its log:\n{}",
                    self.proxy_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The proxy's log so far.
    pub fn proxy_log(&self) -> String {
        self.proxy.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// Sends raw requests from the pod namespace as `uid`, one connection each.
    pub fn raw(
        &self,
        uid: u32,
        addr: SocketAddr,
        requests: &[RawRequest],
    ) -> Result<Vec<RawOutcome>, String> {
        let mut cmd = self.topo.pod.command("setpriv");
        cmd.args(as_uid(uid))
            .arg(&self.bins.http)
            .arg(addr.to_string());
        http_outcomes(cmd, requests)
    }

    /// Runs an SDK client in the pod as the app uid with a clean environment
    /// (no `AZURE_*` variables: the redirect alone must bring it to the proxy).
    pub fn sdk(
        &self,
        sdk: Sdk,
        client_id: Option<&str>,
        extra: &[&str],
    ) -> Result<SdkResult, String> {
        let mut cmd = self.topo.pod.command("setpriv");
        cmd.args(as_uid(APP_UID)).args([
            "env",
            "-i",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "LANG=C.UTF-8",
        ]);
        cmd.arg(format!("HOME={}", self.home.display()));
        match sdk {
            Sdk::Python => cmd
                .arg(self.bins.python_dir.join(".venv/bin/python"))
                .arg(self.bins.python_dir.join("client.py")),
            Sdk::Node => cmd.arg("node").arg(self.bins.node_dir.join("client.mjs")),
            Sdk::Rust => cmd.arg(&self.bins.rust_client),
        };
        if let Some(id) = client_id {
            cmd.args(["--client-id", id]);
        }
        cmd.args(extra);
        let out = run_bounded(cmd, None, CLIENT_TIMEOUT)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_default();
        let json = serde_json::from_str(line).map_err(|e| {
            format!("{sdk:?} client printed no JSON ({e}); stdout:\n{stdout}\nstderr:\n{stderr}")
        })?;
        Ok(SdkResult {
            json,
            success: out.status.success(),
            stderr,
        })
    }
}

/// Runs `podid inject` on the pod against the identity objects.
pub fn inject(
    bins: &Bins,
    pod: &std::path::Path,
    objects: &std::path::Path,
) -> Result<String, String> {
    let mut cmd = Command::new(&bins.podid);
    cmd.args(["inject", "-n", world::NAMESPACE, "-f"])
        .arg(pod)
        .arg("--identities-file")
        .arg(objects);
    let out = run_bounded(cmd, None, Duration::from_secs(30))?;
    if !out.status.success() {
        return Err(format!(
            "podid inject failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

/// Runs `podid-e2e-http` (as `cmd`) on `requests` and reads its outcomes.
pub fn http_outcomes(cmd: Command, requests: &[RawRequest]) -> Result<Vec<RawOutcome>, String> {
    let input = serde_json::to_string(requests).map_err(|e| e.to_string())?;
    let out = run_bounded(cmd, Some(&input), Duration::from_secs(60))?;
    if !out.status.success() {
        return Err(format!(
            "podid-e2e-http failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("podid-e2e-http output: {e}"))
}
