//! Processes: background daemons killed on drop, bounded runs, running as another uid, and the root check.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A background process, killed when dropped; its stdout and stderr go to a log file.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

// === impl Daemon ===

impl Daemon {
    /// Starts `cmd`, logging to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Result<Self, String> {
        let log = log_dir.join(format!("{name}.log"));
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

    /// Kills it and waits for it (what dropping it does, said explicitly).
    pub fn stop(self) {
        drop(self);
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Err` (with its log) if it has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); its log:\n{}",
                self.name,
                self.log()
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion, killing it after `timeout`; output is read from
/// files, so a chatty child cannot block on a full pipe.
pub fn run_bounded(
    mut cmd: Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let open = |p: &Path| File::create(p).map_err(|e| e.to_string());
    cmd.stdout(open(&out_path)?).stderr(open(&err_path)?);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| format!("{cmd:?}: stdin: {e}"))?;
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            return Err(format!(
                "{cmd:?} did not finish within {timeout:?}; stderr:\n{err}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| e.to_string());
    Ok(Output {
        status,
        stdout: read(&out_path)?,
        stderr: read(&err_path)?,
    })
}

/// The capabilities a container runtime (containerd, Docker) gives a container by default.
pub const DEFAULT_CONTAINER_CAPS: [&str; 14] = [
    "chown",
    "dac_override",
    "fsetid",
    "fowner",
    "mknod",
    "net_raw",
    "setgid",
    "setuid",
    "setfcap",
    "setpcap",
    "net_bind_service",
    "sys_chroot",
    "kill",
    "audit_write",
];

/// `setpriv` arguments that run the rest of the command line as a root app container
/// with the default capabilities; with `switch_to`, that root process then changes
/// to uid/gid `switch_to` itself (its CAP_SETUID allows it), as an attacker would.
pub fn as_root_app(switch_to: Option<u32>) -> Vec<String> {
    let caps: String = DEFAULT_CONTAINER_CAPS
        .iter()
        .map(|c| format!(",+{c}"))
        .collect();
    let mut args = vec![
        "setpriv".to_owned(),
        "--reuid=0".to_owned(),
        "--regid=0".to_owned(),
        "--clear-groups".to_owned(),
        "--inh-caps=-all".to_owned(),
        format!("--bounding-set=-all{caps}"),
    ];
    if let Some(uid) = switch_to {
        args.extend(as_uid(uid));
    }
    args
}

/// `setpriv` arguments that run the rest of the command line as `uid`/`gid` `uid`,
/// with no supplementary groups (non-zero uids lose every capability on exec).
pub fn as_uid(uid: u32) -> Vec<String> {
    let id = uid.to_string();
    ["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]
        .map(str::to_owned)
        .to_vec()
}

/// Whether the effective uid is 0.
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    euid == Some("0")
}

/// True when running as root; otherwise prints `SKIPPED (needs root): …` and
/// returns false, and the calling test returns (passing, visibly skipped).
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    // Straight to fd 2: libtest captures `eprintln!` and hides it for a passing test.
    let banner = format!(
        "SKIPPED (needs root): {test}: it builds network namespaces and iptables rules; CI runs as root\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
    false
}
