//! Percentiles, budgets and the printed table.

use std::fmt::Write as _;
use std::time::Duration;

use crate::lines::Mode;
use crate::load::Measured;
use crate::measure::Memory;

/// Issue #3's budgets.
pub const BINARY_BYTES: u64 = 5_000_000;
/// Start → listening, at the median.
pub const START: Duration = Duration::from_millis(20);
/// Idle `VmRSS`, KiB.
pub const RSS_IDLE_KIB: u64 = 4 * 1024;
/// `VmRSS` after the load, KiB.
pub const RSS_LOADED_KIB: u64 = 6 * 1024;
/// Added latency at the median for a cached token.
pub const ADDED_P50: Duration = Duration::from_micros(50);

/// Latency summary of one target in one mode.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Successful requests.
    pub n: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
    /// Successful requests per second of wall time.
    pub rate: f64,
    /// Failed requests.
    pub errors: usize,
    /// The first failure.
    pub first_error: Option<String>,
}

impl Stats {
    /// Summarizes the runs of one target (rounds merged).
    pub fn of(runs: &[Measured]) -> Self {
        let mut ns: Vec<u64> = runs
            .iter()
            .flat_map(|m| m.latencies_ns.iter().copied())
            .collect();
        ns.sort_unstable();
        let wall: u64 = runs.iter().map(|m| m.wall_ns).sum();
        Self {
            n: ns.len(),
            p50: Duration::from_nanos(percentile(&ns, 0.50)),
            p90: Duration::from_nanos(percentile(&ns, 0.90)),
            p99: Duration::from_nanos(percentile(&ns, 0.99)),
            max: Duration::from_nanos(ns.last().copied().unwrap_or(0)),
            rate: ns.len() as f64 / (wall as f64 / 1e9).max(f64::MIN_POSITIVE),
            errors: runs.iter().map(|m| m.errors).sum(),
            first_error: runs.iter().find_map(|m| m.first_error.clone()),
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A budget line of the summary table.
#[derive(Clone, Debug)]
pub struct Line {
    /// What was measured.
    pub metric: String,
    /// The measurement, formatted.
    pub value: String,
    /// The budget, formatted.
    pub budget: String,
    /// `met`, `missed by …` or `—` (informational).
    pub verdict: String,
}

impl Line {
    /// A line judged against a budget: `over` is how far the value exceeds it, if it does.
    pub fn judged(metric: String, value: String, budget: &str, over: Option<String>) -> Self {
        Self {
            metric,
            value,
            budget: budget.to_owned(),
            verdict: over.map_or("met".to_owned(), |by| format!("missed by {by}")),
        }
    }

    /// A line without a budget.
    pub fn info(metric: String, value: String) -> Self {
        Self {
            metric,
            value,
            budget: "—".to_owned(),
            verdict: "—".to_owned(),
        }
    }
}

/// The summary table.
pub fn table(lines: &[Line]) -> String {
    let w = |f: fn(&Line) -> &str, title: &str| {
        lines
            .iter()
            .map(|l| f(l).chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
            + 2
    };
    let (wm, wv, wb) = (
        w(|l| &l.metric, "metric"),
        w(|l| &l.value, "value"),
        w(|l| &l.budget, "budget"),
    );
    let mut out = String::new();
    let mut row = |m: &str, v: &str, b: &str, verdict: &str| {
        let pad = |s: &str, width: usize| format!("{s}{}", " ".repeat(width - s.chars().count()));
        let _ = writeln!(out, "{}{}{}{verdict}", pad(m, wm), pad(v, wv), pad(b, wb));
    };
    row("metric", "value", "budget", "verdict");
    for l in lines {
        row(&l.metric, &l.value, &l.budget, &l.verdict);
    }
    out
}

/// The memory detail table.
pub fn memory_table(rows: &[(String, Memory)]) -> String {
    let mut out = format!(
        "{:<40}{:>8}{:>8}{:>9}{:>9}{:>8}\n",
        "memory (KiB)", "VmRSS", "VmHWM", "RssAnon", "RssFile", "Pss"
    );
    for (what, m) in rows {
        let pss = m.pss.map_or("?".to_owned(), |p| p.to_string());
        let _ = writeln!(
            out,
            "{what:<40}{:>8}{:>8}{:>9}{:>9}{pss:>8}",
            m.rss, m.hwm, m.anon, m.file
        );
    }
    out
}

/// The latency detail table: (target, connections, stats).
pub fn latency_table(rows: &[(String, usize, Stats)]) -> String {
    let mut out = format!(
        "{:<30}{:>6}{:>9}{:>10}{:>10}{:>10}{:>11}{:>9}{:>7}\n",
        "latency", "conns", "requests", "p50", "p90", "p99", "max", "req/s", "errors"
    );
    for (target, conns, s) in rows {
        let _ = writeln!(
            out,
            "{target:<30}{conns:>6}{:>9}{:>10}{:>10}{:>10}{:>11}{:>9.0}{:>7}",
            s.n,
            micros(s.p50),
            micros(s.p90),
            micros(s.p99),
            micros(s.max),
            s.rate,
            s.errors
        );
    }
    out
}

/// Everything measured, ready to print.
#[derive(Debug)]
pub struct Report {
    /// The first line: machine and plan.
    pub header: String,
    /// The summary table.
    pub lines: Vec<Line>,
    /// Memory readings, labelled.
    pub memory: Vec<(String, Memory)>,
    /// The loaded proxy's resident KiB per mapping, when idle.
    pub mappings: Vec<(String, u64)>,
    /// Load targets' names.
    pub targets: Vec<&'static str>,
    /// Latency per mode.
    pub modes: Vec<Mode>,
    /// Why (c) did not run.
    pub skipped: Option<String>,
}

impl Report {
    /// The printed report.
    pub fn compose(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}",
            self.header,
            table(&self.lines),
            memory_table(&self.memory)
        );
        let top: Vec<String> = self
            .mappings
            .iter()
            .take(8)
            .map(|(n, k)| format!("{n} {k}"))
            .collect();
        out += &format!("idle RSS by mapping (KiB): {}\n\n", top.join(", "));
        let rows: Vec<(String, usize, Stats)> = self
            .modes
            .iter()
            .flat_map(|m| {
                let named = self.targets.iter().zip(&m.stats);
                named.map(|(name, s)| (name.to_string(), m.conns, s.clone()))
            })
            .collect();
        out += &latency_table(&rows);
        for (name, c, s) in rows.iter().filter(|r| r.2.errors > 0) {
            out += &format!(
                "errors on {name}, c={c}: {} (first: {:?})\n",
                s.errors, s.first_error
            );
        }
        if let Some(why) = &self.skipped {
            out += &format!("(a′), (b′), (c) through the iptables REDIRECT skipped: {why}\n");
        }
        out
    }
}

/// `38.2 µs`.
pub fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// `+6.9 µs` / `−6.9 µs`.
pub fn signed_micros(a: Duration, b: Duration) -> String {
    let delta = (b.as_secs_f64() - a.as_secs_f64()) * 1e6;
    match delta < 0.0 {
        true => format!("−{:.1} µs", -delta),
        false => format!("+{delta:.1} µs"),
    }
}

/// `4.1 ms`.
pub fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// KiB as `4.08 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.2} MiB", kib as f64 / 1024.0)
}

/// Bytes as `2.47 MB`.
pub fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// `10 000`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(10_000), "10 000");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1 234 567");
    }
}
