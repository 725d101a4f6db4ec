//! Running `iptables-{nft,legacy}-{save,restore}`, and turning their failures into one line a person can act on.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::Flavor;

/// What podid-init needs from iptables: read a table set, feed `--noflush` input.
///
/// The real implementation runs the binaries; tests use a fake.
pub trait Iptables {
    /// `<flavor>-save`, all tables (`table: None`) or one (`-t TABLE`).
    fn save(&self, flavor: Flavor, table: Option<&str>) -> Result<String, ToolError>;
    /// `<flavor>-restore --noflush` with `input` on stdin.
    fn restore(&self, flavor: Flavor, input: &str) -> Result<(), ToolError>;
}

/// A tool run that did not succeed.
#[derive(Debug)]
pub enum ToolError {
    /// The binary is not in `PATH`.
    NotFound {
        /// Binary name.
        tool: &'static str,
    },
    /// It ran and exited non-zero.
    Failed {
        /// Binary name.
        tool: &'static str,
        /// How it exited.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// It could not be started or talked to.
    Io {
        /// Binary name.
        tool: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// Why podid-init could not install the redirect. Displayed after
/// `podid-init: cannot install the IMDS redirect: `, as one line.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The container lacks NET_ADMIN (or is not root): iptables refused.
    #[error("this container lacks the NET_ADMIN capability ({tool}: {detail})")]
    NoNetAdmin {
        /// Binary that refused.
        tool: &'static str,
        /// Its own words, condensed to one line.
        detail: String,
    },
    /// An iptables binary is not installed.
    #[error(
        "{tool} not found in PATH (the image must ship iptables with its nft and legacy tools)"
    )]
    MissingTool {
        /// Binary name.
        tool: &'static str,
    },
    /// An iptables binary failed for another reason.
    #[error("{tool} failed: {detail}")]
    ToolFailed {
        /// Binary name.
        tool: &'static str,
        /// Its own words, condensed to one line.
        detail: String,
    },
    /// Restore succeeded but the table does not show the redirect afterwards.
    #[error(
        "{restore} succeeded but {save} does not show the redirect afterwards (expected: {expected})"
    )]
    NotInstalled {
        /// The restore binary.
        restore: &'static str,
        /// The save binary.
        save: &'static str,
        /// The rules that should be there, `; `-separated.
        expected: String,
    },
}

// === impl InitError ===

impl InitError {
    /// The one line podid-init prints on failure.
    pub fn line(&self) -> String {
        format!("podid-init: cannot install the IMDS redirect: {self}")
    }

    /// Turns a failed tool run into the error to report; `net_admin` is whether
    /// the process's effective capabilities include NET_ADMIN, when known.
    pub fn from_tool(err: ToolError, net_admin: Option<bool>) -> Self {
        match err {
            ToolError::NotFound { tool } => InitError::MissingTool { tool },
            ToolError::Io { tool, source } => InitError::ToolFailed {
                tool,
                detail: source.to_string(),
            },
            ToolError::Failed {
                tool,
                status,
                stderr,
            } => {
                let detail = condense(&stderr).unwrap_or(status);
                if mentions_permission(&stderr) || net_admin == Some(false) {
                    InitError::NoNetAdmin { tool, detail }
                } else {
                    InitError::ToolFailed { tool, detail }
                }
            }
        }
    }
}

/// The first line of an iptables error, without its `iptables-save v1.8.9 (nf_tables): ` prefix.
pub fn condense(stderr: &str) -> Option<String> {
    let line = stderr.lines().map(str::trim).find(|l| !l.is_empty())?;
    let rest = match line.split_once("): ") {
        Some((prefix, rest)) if prefix.starts_with("iptables") => rest,
        _ => line,
    };
    Some(rest.to_owned())
}

/// Whether iptables' stderr says it was not allowed (no root, no NET_ADMIN).
fn mentions_permission(stderr: &str) -> bool {
    [
        "Permission denied",
        "you must be root",
        "Operation not permitted",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

/// Whether `/proc/self/status` text shows CAP_NET_ADMIN (bit 12) in the effective set.
pub fn net_admin_effective(proc_status: &str) -> Option<bool> {
    const CAP_NET_ADMIN: u32 = 12;
    let hex = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let caps = u64::from_str_radix(hex, 16).ok()?;
    Some(caps & (1 << CAP_NET_ADMIN) != 0)
}

/// The real binaries, found through `PATH`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemIptables;

// === impl SystemIptables ===

impl Iptables for SystemIptables {
    fn save(&self, flavor: Flavor, table: Option<&str>) -> Result<String, ToolError> {
        let tool = flavor.save_bin();
        let mut cmd = Command::new(tool);
        if let Some(table) = table {
            cmd.args(["-t", table]);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error(tool, e))?;
        check(tool, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn restore(&self, flavor: Flavor, input: &str) -> Result<(), ToolError> {
        let tool = flavor.restore_bin();
        // `--wait`: the legacy backend takes the xtables lock; another tool in
        // the pod (or a test beside us) may hold it for a moment.
        let mut child = Command::new(tool)
            .args(["--noflush", "--wait", "10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(tool, e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|source| ToolError::Io { tool, source })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| ToolError::Io { tool, source })?;
        check(tool, &out)
    }
}

fn spawn_error(tool: &'static str, e: std::io::Error) -> ToolError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ToolError::NotFound { tool }
    } else {
        ToolError::Io { tool, source: e }
    }
}

fn check(tool: &'static str, out: &std::process::Output) -> Result<(), ToolError> {
    if out.status.success() {
        return Ok(());
    }
    Err(ToolError::Failed {
        tool,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(tool: &'static str, stderr: &str) -> ToolError {
        ToolError::Failed {
            tool,
            status: "exit status: 4".into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn permission_denied_from_nft_reads_as_missing_net_admin_in_one_line() {
        let err = failed(
            "iptables-nft-save",
            "iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: \
             Permission denied (you must be root)\n",
        );
        assert_eq!(
            InitError::from_tool(err, None).line(),
            "podid-init: cannot install the IMDS redirect: this container lacks the NET_ADMIN \
             capability (iptables-nft-save: Could not fetch rule set generation id: Permission \
             denied (you must be root))"
        );
    }

    #[test]
    fn permission_denied_from_legacy_reads_as_missing_net_admin() {
        let err = failed(
            "iptables-legacy-save",
            "iptables-save v1.8.9 (legacy): Cannot initialize: Permission denied (you must be root)\n",
        );
        let line = InitError::from_tool(err, Some(true)).line();
        assert!(line.contains("lacks the NET_ADMIN capability (iptables-legacy-save: Cannot initialize: Permission denied"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn unexplained_failure_without_net_admin_in_caps_still_names_net_admin() {
        let err = failed(
            "iptables-legacy-restore",
            "iptables-restore v1.8.9 (legacy): iptables-restore: unable to initialize table 'nat'\n\
             Error occurred at line: 1\n",
        );
        let line = InitError::from_tool(err, Some(false)).line();
        assert!(line.contains("NET_ADMIN"), "{line}");
        assert!(
            line.ends_with(
                "(iptables-legacy-restore: iptables-restore: unable to initialize table 'nat')"
            ),
            "{line}"
        );
    }

    #[test]
    fn other_failures_with_net_admin_are_reported_as_the_tool_failing() {
        let err = failed(
            "iptables-nft-restore",
            "iptables-nft-restore: line 3 failed\n",
        );
        let line = InitError::from_tool(err, Some(true)).line();
        assert_eq!(
            line,
            "podid-init: cannot install the IMDS redirect: iptables-nft-restore failed: iptables-nft-restore: line 3 failed"
        );
        let silent = failed("iptables-nft-save", "");
        assert!(
            InitError::from_tool(silent, Some(true))
                .line()
                .ends_with("failed: exit status: 4")
        );
    }

    #[test]
    fn missing_binary_is_named() {
        let line = InitError::from_tool(
            ToolError::NotFound {
                tool: "iptables-legacy-save",
            },
            None,
        )
        .line();
        assert!(
            line.contains("iptables-legacy-save not found in PATH"),
            "{line}"
        );
    }

    #[test]
    fn net_admin_is_read_from_the_effective_capability_set() {
        let root = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let dropped = "CapEff:\t00000000a80425fb\n";
        assert_eq!(net_admin_effective(root), Some(true));
        assert_eq!(net_admin_effective(dropped), Some(false));
        assert_eq!(net_admin_effective("Name:\tx\n"), None);
    }
}
