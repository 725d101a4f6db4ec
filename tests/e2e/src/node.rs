//! One node with pods on a bridge, the emulated IMDS on 169.254.169.254:80 and podid-node-guard in file mode, in network namespaces (root only).
//!
//! The node namespace holds a bridge (`10.244.0.1/24`, the address blocked
//! TCP is DNATed to, standing for the node's IP),  the emulator, nftables and the guard. Each pod namespace
//! has one veth on the bridge (which also carries IMDS's address), address `10.244.0.(10+i)` and a default route
//! through the node. Pod objects for the guard's pods file are made from
//! what `podid inject` renders, so the guard is tested against the webhook's
//! real output.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bins::Bins;
use crate::http::{RawOutcome, RawRequest};
use crate::netns::{IMDS_IP, Netns};
use crate::pod::{http_outcomes, imds, inject};
use crate::proc::{Daemon, as_uid, run_bounded};
use crate::world;

/// The node's address on the bridge (the responder's DNAT target).
pub const BRIDGE_IP: &str = "10.244.0.1";
/// The guard's admin port.
pub const ADMIN_PORT: u16 = 15394;

/// The running node. Fields drop in order: guard, emulator, pods, node, files.
#[derive(Debug)]
pub struct GuardNode {
    guard: Option<Daemon>,
    emulator: Daemon,
    pods: Vec<Netns>,
    /// The node namespace.
    pub node: Netns,
    /// What runs.
    pub bins: &'static Bins,
    dir: tempfile::TempDir,
    /// How many guards were started (each logs to its own file).
    starts: usize,
}

/// Sends from one pod's namespace; owns nothing, so it can go to another thread.
#[derive(Clone, Debug)]
pub struct PodClient {
    netns: String,
    http: PathBuf,
}

impl PodClient {
    /// Sends raw requests as `uid`, one connection each.
    pub fn raw(
        &self,
        uid: u32,
        addr: SocketAddr,
        requests: &[RawRequest],
    ) -> Result<Vec<RawOutcome>, String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "setpriv"])
            .args(as_uid(uid));
        cmd.arg(&self.http).arg(addr.to_string());
        http_outcomes(cmd, requests)
    }
}

/// The address of pod `i`.
pub fn pod_ip(i: usize) -> String {
    format!("10.244.0.{}", 10 + i)
}

// === impl GuardNode ===

impl GuardNode {
    /// Builds the node with `pods` pod namespaces and starts the emulated IMDS.
    pub fn start(tag: &str, bins: &'static Bins, pods: usize) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("podid-e2e-guard-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let node = Netns::unique(&format!("podid-e2e-gnode-{tag}"))?;
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", "br0", "type", "bridge"],
            &["addr", "add", &format!("{BRIDGE_IP}/24"), "dev", "br0"],
            &["link", "set", "br0", "up"],
            &["addr", "add", &format!("{IMDS_IP}/32"), "dev", "br0"],
        ] {
            node.ip(args)?;
        }
        let mut netns = Vec::new();
        for i in 0..pods {
            let pod = Netns::unique(&format!("podid-e2e-gpod{i}-{tag}"))?;
            let veth = format!("veth{i}");
            node.ip(&[
                "link",
                "add",
                &veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                pod.name(),
            ])?;
            node.ip(&["link", "set", &veth, "master", "br0", "up"])?;
            pod.ip(&["addr", "add", &format!("{}/24", pod_ip(i)), "dev", "eth0"])?;
            pod.ip(&["link", "set", "lo", "up"])?;
            pod.ip(&["link", "set", "eth0", "up"])?;
            pod.ip(&["route", "add", "default", "via", BRIDGE_IP])?;
            netns.push(pod);
        }
        let azure = dir.path().join("azure.yaml");
        std::fs::write(&azure, world::emulator_world()).map_err(|e| e.to_string())?;
        let mut cmd = node.command(&bins.emulator);
        cmd.arg("--identities").arg(&azure);
        cmd.args([
            "--imds-listen",
            &format!("{IMDS_IP}:80"),
            "--imds-rate=0",
            "--imds-concurrency=0",
        ]);
        let emulator = Daemon::spawn("emulator", cmd, dir.path())?;
        let mut env = Self {
            guard: None,
            emulator,
            pods: netns,
            node,
            bins,
            dir,
            starts: 0,
        };
        env.wait(
            Duration::from_secs(20),
            "the emulated IMDS to answer",
            |env| {
                env.emulator.check_running()?;
                Ok(
                    env.in_node(imds(), &[RawRequest::imds("/metadata/versions")])?[0]
                        .status()
                        .is_some(),
                )
            },
        )?;
        Ok(env)
    }

    /// Polls `ready` every 50 ms until it holds, failing after `timeout`.
    pub fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut(&mut Self) -> Result<bool, String>,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            if ready(self)? {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "waited {timeout:?} for {what}; guard log:\n{}",
                    self.guard_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pods file the guard reads.
    pub fn pods_file(&self) -> PathBuf {
        self.dir.path().join("pods.json")
    }

    /// Replaces the pods file in one rename, so the guard never reads half of it.
    pub fn write_pods(&self, pods: &[Value]) -> Result<(), String> {
        let tmp = self.dir.path().join("pods.json.tmp");
        let text = serde_json::to_string_pretty(pods).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, self.pods_file()).map_err(|e| e.to_string())
    }

    /// Starts the guard in the node (file mode, `extra` flags added) and waits for its `/readyz`.
    pub fn start_guard(&mut self, extra: &[&str]) -> Result<(), String> {
        let mut cmd = self.node.command(&self.bins.node_guard);
        cmd.args(["run", "--log-format=plain", "--pods-file"])
            .arg(self.pods_file());
        cmd.arg(format!("--responder-ip={BRIDGE_IP}")).args(extra);
        self.starts += 1;
        self.guard = Some(Daemon::spawn(
            &format!("guard-{}", self.starts),
            cmd,
            self.dir.path(),
        )?);
        self.wait(Duration::from_secs(20), "the guard's /readyz", |env| {
            if let Some(guard) = env.guard.as_mut() {
                guard.check_running()?;
            }
            let ready = RawRequest {
                method: "GET".into(),
                target: "/readyz".into(),
                headers: vec![],
            };
            Ok(env.admin(&ready)?.status() == Some(200))
        })
        .map(drop)
    }

    /// Stops the guard with SIGTERM (as the kubelet does) and waits for it to exit.
    pub fn stop_guard(&mut self) -> Result<(), String> {
        let Some(pid) = self.guard.as_ref().map(Daemon::pid) else {
            return Ok(());
        };
        let out = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "kill -TERM {pid}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        self.wait(
            Duration::from_secs(10),
            "the guard to exit on SIGTERM",
            |env| {
                Ok(env
                    .guard
                    .as_mut()
                    .is_none_or(|g| g.check_running().is_err()))
            },
        )?;
        self.guard = None;
        Ok(())
    }

    /// The latest guard's log.
    pub fn guard_log(&self) -> String {
        self.guard.as_ref().map(Daemon::log).unwrap_or_else(|| {
            std::fs::read_to_string(self.dir.path().join(format!("guard-{}.log", self.starts)))
                .unwrap_or_default()
        })
    }

    /// One request to the guard's admin port, from the node.
    pub fn admin(&self, request: &RawRequest) -> Result<RawOutcome, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT));
        Ok(self.in_node(addr, std::slice::from_ref(request))?.remove(0))
    }

    /// The guard's `/metrics` text.
    pub fn metrics(&self) -> Result<String, String> {
        let get = RawRequest {
            method: "GET".into(),
            target: "/metrics".into(),
            headers: vec![],
        };
        match self.admin(&get)? {
            RawOutcome::Response { body, .. } => Ok(body),
            other => Err(format!("/metrics: {other:?}")),
        }
    }

    fn in_node(
        &self,
        addr: SocketAddr,
        requests: &[RawRequest],
    ) -> Result<Vec<RawOutcome>, String> {
        let mut cmd = self.node.command(&self.bins.http);
        cmd.arg(addr.to_string());
        http_outcomes(cmd, requests)
    }

    /// Sends raw requests from pod `i` as `uid`, one connection each.
    pub fn raw(
        &self,
        i: usize,
        uid: u32,
        addr: SocketAddr,
        requests: &[RawRequest],
    ) -> Result<Vec<RawOutcome>, String> {
        self.client(i).raw(uid, addr, requests)
    }

    /// A handle that sends from pod `i`, for another thread.
    pub fn client(&self, i: usize) -> PodClient {
        PodClient {
            netns: self.pods[i].name().to_owned(),
            http: self.bins.http.clone(),
        }
    }

    /// Whether a TCP connection from pod `i` to `addr` is answered at all
    /// (accepted or refused) within two seconds (a loaded CI machine is slow to start bash); `false`: dropped.
    pub fn tcp_answered(&self, i: usize, addr: SocketAddr) -> Result<bool, String> {
        let mut cmd = self.pods[i].command("timeout");
        let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
        cmd.args(["2", "bash", "-c", &script]);
        let out = run_bounded(cmd, None, Duration::from_secs(5))?;
        // `timeout` exits 124 when the connect never completed.
        Ok(out.status.code() != Some(124))
    }

    /// Runs `podid-node-guard ARGS` in the node to completion.
    pub fn guard_command(&self, args: &[&str]) -> Result<std::process::Output, String> {
        let mut cmd = self.node.command(&self.bins.node_guard);
        cmd.args(args);
        run_bounded(cmd, None, Duration::from_secs(20))
    }

    /// `nft ARGS` in the node.
    pub fn nft(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = self.node.command("nft");
        cmd.args(args);
        let out = run_bounded(cmd, None, Duration::from_secs(10))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Where the test's files live.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The e2e pod as the webhook renders it, named `name`, running on `ip` with every container started.
pub fn injected_pod(bins: &Bins, dir: &Path, name: &str, ip: &str) -> Result<Value, String> {
    let world = (world::pod_manifest(), world::identity_objects());
    injected_pod_of(bins, dir, name, ip, &world)
}

/// Pod `manifest.0` as the webhook renders it against identity objects `manifest.1`,
/// named `name`, running on `ip` with every container started.
pub fn injected_pod_of(
    bins: &Bins,
    dir: &Path,
    name: &str,
    ip: &str,
    manifest: &(String, String),
) -> Result<Value, String> {
    let (pod, objects) = (dir.join("pod.yaml"), dir.join("identities.yaml"));
    std::fs::write(&pod, &manifest.0).map_err(|e| e.to_string())?;
    std::fs::write(&objects, &manifest.1).map_err(|e| e.to_string())?;
    let mut pod: Value =
        serde_yaml::from_str(&inject(bins, &pod, &objects)?).map_err(|e| e.to_string())?;
    pod["metadata"]["name"] = json!(name);
    pod["metadata"]["uid"] = json!(format!("uid-{name}"));
    let statuses = |list: &str| -> Vec<Value> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let state = if c["name"] == "podid-init" {
                    json!({"terminated": {"exitCode": 0}})
                } else {
                    json!({"running": {}})
                };
                json!({"name": c["name"], "state": state})
            })
            .collect()
    };
    pod["status"] = json!({
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "initContainerStatuses": statuses("initContainers"), "containerStatuses": statuses("containers"),
    });
    Ok(pod)
}

/// A running pod that was not injected.
pub fn plain_pod(name: &str, ip: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": world::NAMESPACE, "uid": format!("uid-{name}"), "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "containerStatuses": [{"name": "app", "state": {"running": {}}}]},
    })
}
