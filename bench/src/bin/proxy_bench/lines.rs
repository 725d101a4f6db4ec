//! The summary table's lines: each measurement against its budget from issue #3.

use std::time::Duration;

use crate::measure::Memory;
use crate::report::{self, Line, Stats, mb, mib, micros, millis, signed_micros};

/// Size, start time and idle memory of one build of the proxy.
#[derive(Clone, Debug)]
pub struct Footprint {
    /// Which build (`sidecar profile`, `sidecar, static glibc`).
    pub label: &'static str,
    /// Binary size in bytes.
    pub size: u64,
    /// Spawn → listening, each start.
    pub startup: Vec<Duration>,
    /// Memory of each proxy started side by side, once ready.
    pub idle: Vec<Memory>,
}

/// Latency of every target in one mode.
#[derive(Clone, Debug)]
pub struct Mode {
    /// Connections.
    pub conns: usize,
    /// One per target, in the targets' order.
    pub stats: Vec<Stats>,
}

/// Size, start → listening and idle RSS lines.
pub fn footprint(f: &Footprint) -> Vec<Line> {
    let label = f.label;
    let over_size = (f.size > report::BINARY_BYTES).then(|| mb(f.size - report::BINARY_BYTES));
    let size = Line::judged(
        format!("binary size ({label})"),
        mb(f.size),
        "≤ 5 MB",
        over_size,
    );
    let mut ns: Vec<u64> = f.startup.iter().map(|d| d.as_nanos() as u64).collect();
    ns.sort_unstable();
    let (p50, p90) = (
        Duration::from_nanos(report::percentile(&ns, 0.5)),
        Duration::from_nanos(report::percentile(&ns, 0.9)),
    );
    let over_start = (p50 > report::START).then(|| millis(p50 - report::START));
    let start = Line::judged(
        format!("start → listening ({label}; median of {})", ns.len()),
        format!("{} (p90 {})", millis(p50), millis(p90)),
        "≤ 20 ms",
        over_start,
    );
    vec![size, start, idle(label, &f.idle)]
}

/// Idle RSS: the median of the proxies started side by side, with their range
/// (it varies by ±100 KiB from start to start: ASLR moves the kernel's 64 KiB
/// fault-around windows over the binary's and the libraries' pages).
fn idle(label: &str, samples: &[Memory]) -> Line {
    let mut rss: Vec<u64> = samples.iter().map(|m| m.rss).collect();
    rss.sort_unstable();
    let median = report::percentile(&rss, 0.5);
    let (low, high) = (rss.first().copied(), rss.last().copied());
    let (low, high) = (low.unwrap_or(0) as f64, high.unwrap_or(0) as f64);
    let value = format!("{} ({:.2}–{:.2})", mib(median), low / 1024.0, high / 1024.0);
    let metric = format!("RSS idle ({label}; median of {})", samples.len());
    Line::judged(
        metric,
        value,
        "≤ 4 MiB",
        over_kib(median, report::RSS_IDLE_KIB),
    )
}

/// RSS after each load mode.
pub fn loaded(memory: &[(String, Memory)]) -> Vec<Line> {
    memory
        .iter()
        .map(|(what, m)| {
            let over = over_kib(m.rss, report::RSS_LOADED_KIB);
            Line::judged(format!("RSS {what}"), mib(m.rss), "≤ 6 MiB", over)
        })
        .collect()
}

/// `84 KiB (2.1 %)` when `kib` exceeds `budget`.
fn over_kib(kib: u64, budget: u64) -> Option<String> {
    let pct = kib.saturating_sub(budget) as f64 * 100.0 / budget as f64;
    (kib > budget).then(|| format!("{} KiB ({pct:.1} %)", kib - budget))
}

/// Δ p50 lines: (b) over (a); with the namespaces, (c) over (a′), and the
/// redirect alone, (c) over (b′).
pub fn latency(mode: &Mode, netns: bool) -> Vec<Line> {
    let c = mode.conns;
    let s = &mode.stats;
    let judged = |label: &str, base: &Stats, via: &Stats| {
        let delta = via.p50.saturating_sub(base.p50);
        let over = (delta > report::ADDED_P50).then(|| micros(delta - report::ADDED_P50));
        let value = format!(
            "{} / {} / {}",
            micros(base.p50),
            micros(via.p50),
            signed_micros(base.p50, via.p50)
        );
        Line::judged(format!("{label} (c={c})"), value, "Δ ≤ 50 µs", over)
    };
    let mut lines = vec![judged("p50 (a) direct / (b) proxy / Δ", &s[0], &s[1])];
    if netns && s.len() >= 5 {
        lines.push(judged("p50 (a′) pod→IMDS / (c) REDIRECT / Δ", &s[2], &s[4]));
        let value = signed_micros(s[3].p50, s[4].p50);
        lines.push(Line::info(
            format!("p50 of the redirect alone, (c) − (b′) (c={c})"),
            value,
        ));
    }
    lines
}
