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

/// The Kubernetes and Azure world a [`PodEnv`] is built from.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The pod, as its author writes it.
    pub pod_manifest: String,
    /// AzureIdentity / AzureIdentityBinding objects `podid inject` resolves against.
    pub identity_objects: String,
    /// The stand-in's identities file.
    pub emulator_world: String,
    /// More stand-in flags (an Azure AD listener, say).
    pub emulator_args: Vec<String>,
    /// More environment for the proxy than the webhook renders (a test CA).
    pub proxy_env: Vec<(String, String)>,
    /// A directory mounted, for the proxy only, where the rendered proxy reads the
    /// projected service-account token (the kubelet's job in a cluster).
    pub token_dir: Option<PathBuf>,
}

impl Scenario {
    /// Three managed identities on the VM, the pod bound to two ([`world`]).
    pub fn managed_identities() -> Self {
        Self {
            pod_manifest: world::pod_manifest(),
            identity_objects: world::identity_objects(),
            emulator_world: world::emulator_world(),
            emulator_args: Vec::new(),
            proxy_env: Vec::new(),
            token_dir: None,
        }
    }
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
    proxy_env: Vec<(String, String)>,
    token_dir: Option<PathBuf>,
    home: PathBuf,
    dir: tempfile::TempDir,
}

// === impl PodEnv ===

impl PodEnv {
    /// [`PodEnv::start_with`] the managed-identity scenario.
    pub fn start(tag: &str, bins: &'static Bins) -> Result<Self, String> {
        Self::start_with(tag, bins, Scenario::managed_identities())
    }

    /// Renders the pod with `podid inject`, builds the namespaces and starts the emulated IMDS.
    pub fn start_with(tag: &str, bins: &'static Bins, scenario: Scenario) -> Result<Self, String> {
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
        let pod = write("pod.yaml", scenario.pod_manifest)?;
        let objects = write("identities.yaml", scenario.identity_objects)?;
        let azure = write("azure.yaml", scenario.emulator_world)?;
        let injected = inject(bins, &pod, &objects)?;
        let topo = Topology::new(tag)?;
        let mut cmd = topo.node.command(&bins.emulator);
        cmd.arg("--identities").arg(&azure);
        cmd.args([
            "--imds-listen",
            &format!("{IMDS_IP}:80"),
            "--imds-rate=0",
            "--imds-concurrency=0",
        ]);
        cmd.args(&scenario.emulator_args);
        let emulator = Daemon::spawn("emulator", cmd, dir.path())?;
        let mut env = Self::from_parts(topo, bins, &injected, emulator, dir)?;
        env.proxy_env = scenario.proxy_env;
        env.token_dir = scenario.token_dir;
        Ok(env)
    }

    /// The pod of `injected` (a pod manifest as the webhook admitted it) on
    /// `topo`, whose node runs `emulator` (serving IMDS on 169.254.169.254:80);
    /// waits for IMDS to answer. `dir` holds logs and the apps' home. The
    /// proxy gets only its rendered environment, and no token directory.
    pub fn from_parts(
        topo: Topology,
        bins: &'static Bins,
        injected: &str,
        emulator: Daemon,
        dir: tempfile::TempDir,
    ) -> Result<Self, String> {
        let init = world::rendered(injected, "podid-init")?;
        let serve = world::rendered(injected, "podid-proxy")?;
        for c in [&init, &serve] {
            if !c.argv.first().is_some_and(|p| p.ends_with("/podid-proxy")) {
                return Err(format!(
                    "the webhook no longer runs podid-proxy: {:?}",
                    c.argv
                ));
            }
        }
        let home = dir.path().join("home");
        if !home.is_dir() {
            std::fs::create_dir(&home).map_err(|e| e.to_string())?;
        }
        let open = std::fs::Permissions::from_mode(0o1777);
        for path in [dir.path(), &home] {
            std::fs::set_permissions(path, open.clone()).map_err(|e| e.to_string())?;
        }
        let mut env = Self {
            proxy: None,
            emulator,
            topo,
            bins,
            init,
            serve,
            proxy_env: Vec::new(),
            token_dir: None,
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
        let mut cmd = self.proxy_command()?;
        cmd.args(as_uid(self.serve.uid)).arg("env").arg("-i");
        let env = self.serve.env.iter().chain(&self.proxy_env);
        cmd.args(env.map(|(k, v)| format!("{k}={v}")));
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

    /// The command the proxy runs under: in the pod, and with a token directory, in a
    /// private mount namespace where it is mounted at the rendered token file's directory.
    fn proxy_command(&self) -> Result<Command, String> {
        let Some(dir) = &self.token_dir else {
            return Ok(self.topo.pod.command("setpriv"));
        };
        let file = self
            .serve
            .argv
            .iter()
            .find_map(|a| a.split(',').find_map(|kv| kv.strip_prefix("token-file=")))
            .ok_or("the rendered proxy reads no token file")?;
        let mount_point = std::path::Path::new(file)
            .parent()
            .ok_or("the token file has no directory")?;
        // A tmpfs over /run (private to this process) holds the mount point, so the
        // host's /run is neither changed nor needed.
        let script = r#"mount -t tmpfs podid-e2e /run && mkdir -p "$2" && mount --bind "$1" "$2" && shift 2 && exec "$@""#;
        let mut cmd = self.topo.pod.command("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ]);
        cmd.arg(dir).arg(mount_point).arg("setpriv");
        Ok(cmd)
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
        self.raw_as(&as_uid(uid), addr, requests)
    }

    /// Sends raw requests from the pod namespace under `setpriv` arguments `how`
    /// (`how[0]` is `setpriv`), one connection each.
    pub fn raw_as(
        &self,
        how: &[String],
        addr: SocketAddr,
        requests: &[RawRequest],
    ) -> Result<Vec<RawOutcome>, String> {
        let (program, args) = how.split_first().ok_or("no setpriv arguments")?;
        let mut cmd = self.topo.pod.command(program);
        cmd.args(args).arg(&self.bins.http).arg(addr.to_string());
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
