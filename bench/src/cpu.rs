//! CPU time from `/proc`: the server's, the load generator's and everything else's, so a table
//! shows where the cores went and whether other work on the machine disturbed the run.

use std::time::Duration;

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time used in a run's measured window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// By the server process.
    pub server: Option<Duration>,
    /// By the load generator (this process).
    pub client: Option<Duration>,
    /// By every other process on the machine (user + system time, interrupts excluded).
    pub other: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    server: Option<Duration>,
    client: Option<Duration>,
    machine: Option<Duration>,
}

impl Sample {
    fn take(server_pid: u32) -> Self {
        Self {
            server: process(&format!("/proc/{server_pid}/stat")),
            client: process("/proc/self/stat"),
            machine: machine(),
        }
    }
}

/// Waits out `warmup`, then samples CPU time across `duration`.
pub async fn in_window(server_pid: u32, warmup: Duration, duration: Duration) -> Cpu {
    tokio::time::sleep(warmup).await;
    let before = Sample::take(server_pid);
    tokio::time::sleep(duration).await;
    let after = Sample::take(server_pid);
    let used = |b: Option<Duration>, a: Option<Duration>| Some(a?.saturating_sub(b?));
    let (server, client) = (
        used(before.server, after.server),
        used(before.client, after.client),
    );
    let other = used(before.machine, after.machine)
        .and_then(|all| Some(all.saturating_sub(server? + client?)));
    Cpu {
        server,
        client,
        other,
    }
}

/// Waits, at most `patience`, until the machine has been idle for [`QUIET_SPELL`]: less than
/// [`QUIET_SHARE`] of its cores busy. Returns whether it became quiet.
pub fn wait_quiet(patience: Duration) -> bool {
    let started = std::time::Instant::now();
    let mut quiet_since = None;
    let mut last = machine_busy_and_total();
    while started.elapsed() < patience {
        std::thread::sleep(QUIET_STEP);
        let now = machine_busy_and_total();
        let quiet = match (last, now) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                (b1.saturating_sub(b0)) as f64 <= QUIET_SHARE * (t1 - t0) as f64
            }
            _ => return false,
        };
        last = now;
        if !quiet {
            quiet_since = None;
        } else if quiet_since
            .get_or_insert_with(std::time::Instant::now)
            .elapsed()
            >= QUIET_SPELL
        {
            return true;
        }
    }
    false
}

/// How long the machine must stay idle before a run starts.
const QUIET_SPELL: Duration = Duration::from_secs(2);
/// How often idleness is sampled.
const QUIET_STEP: Duration = Duration::from_millis(250);
/// Busy share of all cores still counted as idle.
const QUIET_SHARE: f64 = 0.05;

/// User + system CPU time of the process whose `stat` file is at `path`.
fn process(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(ticks(utime + stime))
}

/// User, nice and system time of all cores: what processes use, comparable with [`process`].
fn machine() -> Option<Duration> {
    machine_busy_and_total().map(|(busy, _)| ticks(busy))
}

/// Ticks of all cores: (user + nice + system, that plus idle).
fn machine_busy_and_total() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(4)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let busy = fields.iter().take(3).sum();
    Some((busy, busy + fields.get(3)?))
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / TICKS_PER_SECOND)
}
