//! How the proxy's own IMDS traffic escapes the redirect, and whether this node can guarantee it (pure).
//!
//! In `cgroup` mode (the default) the proxy installs, from inside its own
//! container, a rule `-m cgroup --path /` in the chain `PODID_PROXY`. The
//! kernel resolves that path in the *caller's* cgroup namespace, so the rule
//! matches the proxy's container cgroup and nothing else: no uid, group, mark
//! or capability an app container can take gets its sockets there. That holds
//! only when (a) the kernel resolves the path relative to the caller's cgroup
//! namespace (Linux 6.1, commit "cgroup: Honor caller's cgroup NS when
//! resolving path"; before, `/` meant the machine's root cgroup and the rule
//! matched every socket), (b) the container sees a cgroup v2 hierarchy rooted
//! at its own cgroup (a private cgroup namespace, as containerd and CRI-O give
//! on cgroup v2 nodes), and (c) no cgroup v1 `net_cls`/`net_prio` hierarchy
//! is in use, which older kernels let override v2 socket matching.
//! [`check_cgroup_mode`] decides that from what the proxy can see; anything
//! else fails closed. `uid` mode is the pre-0.2 rule (uid 1501 is not
//! redirected), which any root container with CAP_SETUID can defeat; it is
//! only used when the install asks for it explicitly.

use std::fmt;
use std::str::FromStr;

/// First kernel release whose `xt_cgroup --path` resolves in the caller's cgroup namespace.
pub const MIN_KERNEL: (u32, u32) = (6, 1);

/// `statfs(2)` `f_type` of a cgroup v2 filesystem (`CGROUP2_SUPER_MAGIC`).
pub const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// How the proxy's own connections to IMDS are kept out of the redirect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Exemption {
    /// The proxy's container cgroup (installed by the proxy itself); fails closed where the node cannot guarantee it.
    #[default]
    Cgroup,
    /// uid 1501: weaker (a root app container can `setuid(1501)`), only when the install allows it explicitly.
    Uid,
}

/// A value of `--exemption` that is neither `cgroup` nor `uid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exemption {0:?}: expected `cgroup` or `uid`")]
pub struct ExemptionParseError(String);

/// Why this node cannot guarantee the cgroup exemption.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The kernel is older than [`MIN_KERNEL`] (or its release does not parse).
    #[error(
        "kernel {release} resolves xt_cgroup paths from the machine's root cgroup (needs Linux 6.1 or later)"
    )]
    Kernel {
        /// `uname -r`.
        release: String,
    },
    /// `/sys/fs/cgroup` is not a cgroup v2 mount (cgroup v1 or hybrid node).
    #[error("/sys/fs/cgroup is not cgroup v2 (a cgroup v1 or hybrid node)")]
    NotCgroup2,
    /// The container's cgroup v2 entry is not `/`: no private cgroup namespace.
    #[error(
        "the container has no private cgroup namespace (its cgroup v2 path is {path:?}, not \"/\")"
    )]
    SharedNamespace {
        /// The `0::` entry of `/proc/self/cgroup`.
        path: String,
    },
    /// The cgroup namespace's root is the machine's root cgroup: the rule would match every socket.
    #[error("the container's cgroup is the machine's root cgroup")]
    MachineRoot,
    /// A cgroup v1 `net_cls` or `net_prio` hierarchy is present.
    #[error("a cgroup v1 {controller} hierarchy is in use")]
    NetClassifier {
        /// `net_cls`, `net_prio` or both.
        controller: String,
    },
    /// Something the check needs could not be read.
    #[error("cannot read {what}: {error}")]
    Unreadable {
        /// What.
        what: &'static str,
        /// Why.
        error: String,
    },
}

/// What the proxy sees of its kernel and cgroups, read at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupView {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: String,
    /// `statfs("/sys/fs/cgroup").f_type`.
    pub cgroup_fs_magic: u64,
    /// `/proc/self/cgroup`.
    pub proc_self_cgroup: String,
    /// Whether `/sys/fs/cgroup/cgroup.events` exists (every cgroup but the machine's root has it).
    pub has_cgroup_events: bool,
}

// === impl Exemption ===

impl Exemption {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Exemption::Cgroup => "cgroup",
            Exemption::Uid => "uid",
        }
    }
}

impl fmt::Display for Exemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Exemption {
    type Err = ExemptionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cgroup" => Ok(Exemption::Cgroup),
            "uid" => Ok(Exemption::Uid),
            other => Err(ExemptionParseError(other.to_owned())),
        }
    }
}

/// Whether the cgroup exemption is guaranteed here; the first reason it is not, otherwise.
pub fn check_cgroup_mode(view: &CgroupView) -> Result<(), Refusal> {
    if !kernel_at_least(&view.kernel_release, MIN_KERNEL) {
        return Err(Refusal::Kernel {
            release: view.kernel_release.trim().to_owned(),
        });
    }
    if view.cgroup_fs_magic != CGROUP2_SUPER_MAGIC {
        return Err(Refusal::NotCgroup2);
    }
    let mut v2_path = None;
    let mut classifiers = Vec::new();
    for line in view.proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path);
        }
        for c in controllers.split(',') {
            if matches!(c, "net_cls" | "net_prio") && !classifiers.contains(&c) {
                classifiers.push(c);
            }
        }
    }
    match v2_path {
        Some("/") => {}
        other => {
            return Err(Refusal::SharedNamespace {
                path: other.unwrap_or("(none)").to_owned(),
            });
        }
    }
    if !classifiers.is_empty() {
        return Err(Refusal::NetClassifier {
            controller: classifiers.join(" and "),
        });
    }
    if !view.has_cgroup_events {
        return Err(Refusal::MachineRoot);
    }
    Ok(())
}

/// Whether `release` (`6.18.44-fc-v1272`, `5.15.0-1064-azure`) is at least `min`.
pub fn kernel_at_least(release: &str, min: (u32, u32)) -> bool {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

/// The one line the proxy writes to its termination message when it fails closed.
///
/// Starts with [`crate::names::FAILED_CLOSED_PREFIX`], so tools can recognise it
/// in the container's termination message.
pub fn failed_closed_line(node: &str, reason: &dyn fmt::Display) -> String {
    let node = if node.is_empty() { "(unknown)" } else { node };
    format!(
        "{} on node {node}: {reason}; the pod's app cannot be given its identity safely here \
         (run it on a cgroup v2 node with Linux 6.1 or later, or install with proxyExemption=uid)",
        crate::names::FAILED_CLOSED_PREFIX
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "exemption_tests.rs"]
mod tests;
