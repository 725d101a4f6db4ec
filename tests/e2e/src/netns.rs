//! Network namespaces standing for a node and a pod, joined by a veth pair; deleted on drop, even when a test fails.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The IMDS address, on the node side of the veth.
pub const IMDS_IP: &str = "169.254.169.254";
/// The node's address for services other than IMDS (the stand-in's Azure AD), which
/// an all-federated pod must reach while IMDS is rejected.
pub const NODE_SERVICES_IP: &str = "169.254.77.1";
/// The pod's address on its side of the veth (link-local, like IMDS: nothing outside this machine).
pub const POD_IP: &str = "169.254.77.2";

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// A node namespace holding IMDS and a pod namespace that reaches it over a veth.
///
/// # Guarantees
/// The pod namespace has loopback and two routes through the veth, to IMDS and to
/// [`NODE_SERVICES_IP`]: no other network. Names are unique ([`Netns::unique`]).
#[derive(Debug)]
pub struct Topology {
    /// The pod: where podid-init, the proxy and the apps run.
    pub pod: Netns,
    /// The node: where IMDS listens.
    pub node: Netns,
}

// === impl Netns ===

impl Netns {
    /// `ip netns add NAME`.
    pub fn create(name: String) -> Result<Self, String> {
        run(Command::new("ip").args(["netns", "add", &name]))?;
        Ok(Self { name })
    }

    /// A namespace named `PREFIX-PID-N`, unique per process and call, so
    /// parallel tests and runs do not collide.
    pub fn unique(prefix: &str) -> Result<Self, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Self::create(format!("{prefix}-{}-{n}", std::process::id()))
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// `ip -n NAME ARGS…`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace takes its veth end (and so the pair) with it.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

// === impl Topology ===

impl Topology {
    /// Creates both namespaces and wires them up.
    pub fn new(tag: &str) -> Result<Self, String> {
        // Drop order: pod first, then node; each deletes itself if a later step fails.
        let pod = Netns::unique(&format!("podid-e2e-pod-{tag}"))?;
        let node = Netns::unique(&format!("podid-e2e-node-{tag}"))?;
        let (pod_if, node_if) = ("eth0", "veth-pod");
        node.ip(&[
            "link",
            "add",
            node_if,
            "type",
            "veth",
            "peer",
            "name",
            pod_if,
            "netns",
            pod.name(),
        ])?;
        node.ip(&["addr", "add", &format!("{IMDS_IP}/32"), "dev", node_if])?;
        node.ip(&[
            "addr",
            "add",
            &format!("{NODE_SERVICES_IP}/32"),
            "dev",
            node_if,
        ])?;
        node.ip(&["link", "set", "lo", "up"])?;
        node.ip(&["link", "set", node_if, "up"])?;
        node.ip(&["route", "add", &format!("{POD_IP}/32"), "dev", node_if])?;
        pod.ip(&["addr", "add", &format!("{POD_IP}/32"), "dev", pod_if])?;
        pod.ip(&["link", "set", "lo", "up"])?;
        pod.ip(&["link", "set", pod_if, "up"])?;
        pod.ip(&["route", "add", &format!("{IMDS_IP}/32"), "dev", pod_if])?;
        pod.ip(&[
            "route",
            "add",
            &format!("{NODE_SERVICES_IP}/32"),
            "dev",
            pod_if,
        ])?;
        Ok(Self { pod, node })
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
