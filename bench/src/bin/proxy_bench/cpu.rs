//! CPU time on the machine from `/proc`: how busy other processes kept the cores while the latency was measured, and waiting for them to quiet down.

use std::time::{Duration, Instant};

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
const TICKS_PER_SECOND: f64 = 100.0;
/// Other processes below this many busy cores count as quiet.
pub const QUIET_CORES: f64 = 0.25;

/// CPU ticks at one instant: the whole machine's, and ours (this process with
/// its waited-for children, and the servers).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    at: Instant,
    machine: u64,
    ours: u64,
}

/// Takes a sample; `pids` are the servers (children not yet waited for).
pub fn sample(pids: &[u32]) -> Sample {
    let ours = own_ticks() + pids.iter().map(|p| process_ticks(*p, false)).sum::<u64>();
    Sample {
        at: Instant::now(),
        machine: machine_ticks(),
        ours,
    }
}

/// Cores other processes kept busy on average between two samples.
pub fn others(before: Sample, after: Sample) -> f64 {
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let machine = after.machine.saturating_sub(before.machine);
    let ours = after.ours.saturating_sub(before.ours);
    machine.saturating_sub(ours) as f64 / TICKS_PER_SECOND / secs.max(f64::MIN_POSITIVE)
}

/// Waits until other processes use fewer than [`QUIET_CORES`] over a second,
/// or `patience` runs out; the last second's reading.
pub fn wait_for_quiet(pids: &[u32], patience: Duration) -> f64 {
    let deadline = Instant::now() + patience;
    loop {
        let before = sample(pids);
        std::thread::sleep(Duration::from_secs(1));
        let busy = others(before, sample(pids));
        if busy < QUIET_CORES || Instant::now() >= deadline {
            return busy;
        }
    }
}

fn own_ticks() -> u64 {
    process_ticks(std::process::id(), true)
}

/// utime + stime (+ cutime + cstime, the waited-for children's) of `pid`.
fn process_ticks(pid: u32, children: bool) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let take = if children { 4 } else { 2 };
    fields.iter().take(take).sum()
}

/// user + nice + system + irq + softirq of all cores.
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum()
}

/// Pins this process, and so every process it starts from now on, to
/// `cpus` (a `taskset` list such as `0` or `0,1`).
///
/// In a VM a process woken on another vCPU that had halted waits for the
/// host to run that vCPU again (~35 µs here when the machine is quiet): on
/// one CPU every wake-up is a plain context switch, so the latency is the
/// per-request cost of the software alone.
pub fn pin(cpus: &str) -> Result<(), String> {
    let pid = std::process::id().to_string();
    let out = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid])
        .output()
        .map_err(|e| format!("taskset: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "taskset -c {cpus}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}
