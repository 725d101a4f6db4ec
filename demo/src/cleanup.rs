//! Clean-up that also happens on Ctrl-C and SIGTERM: what the demo started is registered here, and the signal path removes it.
//!
//! On the normal path every process, namespace and file is owned by a value
//! whose drop removes it (the e2e harness's `Daemon`, `Netns`, `TempDir`).
//! A signal does not unwind the thread running the steps, so the signal path
//! removes the same things itself: it kills every descendant process (read
//! from `/proc`, so also short-lived ones such as an SDK client), deletes the
//! registered network namespaces and removes the registered directories.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

static NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether a signal is being handled: the steps' own failures are then not news.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Remembers a network namespace to delete on a signal.
pub fn register_netns(name: &str) {
    let mut list = NAMESPACES.lock().unwrap_or_else(PoisonError::into_inner);
    list.push(name.to_owned());
}

/// Remembers a directory to remove on a signal.
pub fn register_dir(path: PathBuf) {
    DIRS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(path);
}

/// What the signal path did.
#[derive(Debug, Default)]
pub struct Removed {
    /// Processes killed.
    pub processes: usize,
    /// Registered namespaces and directories that still exist afterwards (none, normally).
    pub left_behind: Vec<String>,
}

/// Kills every descendant, then deletes the namespaces and directories and checks that they are gone.
pub fn on_signal() -> Removed {
    STOPPING.store(true, Ordering::SeqCst);
    let mut removed = Removed::default();
    // A step may be starting a process while this runs: a few passes catch it.
    for _ in 0..5 {
        let pids = descendants(std::process::id());
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw)
                && kill_process(pid, Signal::KILL).is_ok()
            {
                removed.processes += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The steps' own drops may be deleting the same things: either may win.
    for name in NAMESPACES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
    {
        let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        if Path::new("/run/netns").join(&name).exists() {
            removed
                .left_behind
                .push(format!("network namespace {name}"));
        }
    }
    for dir in DIRS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
    {
        let _ = std::fs::remove_dir_all(&dir);
        if dir.exists() {
            removed.left_behind.push(dir.display().to_string());
        }
    }
    removed
}

/// Every process whose parent chain leads to `root`, children before grandchildren.
pub fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parent_of(&stat)?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid in a `/proc/PID/stat` line (after the command name, which may hold spaces and parentheses).
fn parent_of(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_after_the_command_name() {
        assert_eq!(parent_of("42 (a) b) (c) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("42 (sleep) S 1 42"), Some(1));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn a_child_process_is_a_descendant() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
    }
}
