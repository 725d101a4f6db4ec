//! Start time (spawn → the listen port accepts) and memory (`/proc/<pid>/status`, `smaps`) of the proxy.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::servers::{Process, free_addr, proxy_args};

/// Give up on a start after this long.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between connection attempts: short against the budget, long enough
/// not to take a core from the process that is starting.
const POLL: Duration = Duration::from_micros(50);

/// Memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the most ever resident.
    pub hwm: u64,
    /// `RssAnon`: heap, stacks, written pages.
    pub anon: u64,
    /// `RssFile`: pages of the binary and shared libraries.
    pub file: u64,
    /// `Pss` (shared pages split among the processes mapping them), if readable.
    pub pss: Option<u64>,
}

/// Starts the proxy `runs` times; how long each took until its listen port accepted a connection.
pub fn startup(
    proxy: &Path,
    imds: SocketAddr,
    runs: usize,
    dir: &Path,
) -> Result<Vec<Duration>, String> {
    (0..runs).map(|_| start_once(proxy, imds, dir)).collect()
}

fn start_once(proxy: &Path, imds: SocketAddr, dir: &Path) -> Result<Duration, String> {
    let (listen, admin) = (free_addr()?, free_addr()?);
    let mut cmd = Command::new(proxy);
    cmd.args(proxy_args(listen, admin, imds));
    let started = Instant::now();
    let mut process = Process::spawn("proxy-startup", cmd, dir)?;
    loop {
        if let Ok(conn) = TcpStream::connect(listen) {
            let elapsed = started.elapsed();
            drop(conn);
            process.stop();
            return Ok(elapsed);
        }
        process.check_running()?;
        if started.elapsed() > START_TIMEOUT {
            return Err(format!(
                "the proxy did not listen on {listen} in {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Reads `pid`'s memory from `/proc`.
pub fn memory(pid: u32) -> Result<Memory, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let field = |name: &str| kib_field(&status, name).ok_or(format!("{path}: no {name}"));
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Ok(Memory {
        rss: field("VmRSS")?,
        hwm: field("VmHWM")?,
        anon: field("RssAnon")?,
        file: field("RssFile")?,
        pss: kib_field(&rollup, "Pss"),
    })
}

/// `Name:   1234 kB` → 1234.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Resident KiB per mapping (file name, `[heap]`, `[stack]`, or `anonymous`), largest first.
pub fn rss_by_mapping(pid: u32) -> Vec<(String, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range, perms, offset, device, inode, [name].
            let name = fields.nth(4).unwrap_or("anonymous");
            current = Path::new(name)
                .file_name()
                .map_or(name.to_owned(), |n| n.to_string_lossy().into_owned());
        } else if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *by_name.entry(current.clone()).or_default() += kib;
        }
    }
    let mut sorted: Vec<_> = by_name.into_iter().filter(|(_, kib)| *kib > 0).collect();
    sorted.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_read_by_exact_name() {
        let status = "VmHWM:\t    4180 kB\nVmRSS:\t    4100 kB\nRssAnon:\t 368 kB\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(4100));
        assert_eq!(kib_field(status, "VmHWM"), Some(4180));
        assert_eq!(kib_field(status, "Rss"), None);
    }
}
