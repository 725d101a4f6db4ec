//! Percentiles from the recorded latencies, and the printed table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::cpu::Cpu;
use crate::handler::HandlerCost;
use crate::load::Measured;

/// Goal (issue 12): podid's closed-loop throughput over the bare server's.
pub const GOAL_RATIO: f64 = 0.60;
/// Goal: podid's p99 at the fixed rate.
pub const GOAL_P99: Duration = Duration::from_millis(2);

/// Cores used by other processes above which a run is flagged as disturbed.
pub const DISTURBED_CORES: f64 = 0.05;

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// `bare` or `podid`.
    pub server: &'static str,
    /// `closed-loop` or `<rate> req/s`.
    pub mode: String,
    /// Successful requests per second over the measured window.
    pub rate: f64,
    /// Latency percentiles and maximum.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest request.
    pub max: Duration,
    /// Failed requests.
    pub errors: usize,
    /// Distinct error messages with their counts.
    pub error_kinds: BTreeMap<String, usize>,
    /// Server cores busy on average over the window.
    pub server_cores: Option<f64>,
    /// Server CPU per successful request.
    pub server_per_request: Option<Duration>,
    /// Load generator cores busy on average.
    pub client_cores: Option<f64>,
    /// Cores busy with anything else on the machine.
    pub other_cores: Option<f64>,
}

impl Row {
    /// Summarizes a run.
    pub fn new(server: &'static str, mode: String, mut measured: Measured, cpu: Cpu) -> Self {
        measured.latencies_ns.sort_unstable();
        let lat = &measured.latencies_ns;
        let window = measured.window.as_secs_f64().max(f64::MIN_POSITIVE);
        let mut error_kinds = BTreeMap::new();
        for e in &measured.errors {
            let short: String = e.chars().take(200).collect();
            *error_kinds.entry(short).or_insert(0) += 1;
        }
        Self {
            server,
            mode,
            rate: lat.len() as f64 / window,
            p50: percentile(lat, 0.50),
            p99: percentile(lat, 0.99),
            p999: percentile(lat, 0.999),
            max: Duration::from_nanos(lat.last().copied().unwrap_or(0)),
            errors: measured.errors.len(),
            error_kinds,
            server_cores: cpu.server.map(|c| c.as_secs_f64() / window),
            server_per_request: cpu
                .server
                .filter(|_| !lat.is_empty())
                .map(|c| c / u32::try_from(lat.len()).unwrap_or(u32::MAX)),
            client_cores: cpu.client.map(|c| c.as_secs_f64() / window),
            other_cores: cpu.other.map(|c| c.as_secs_f64() / window),
        }
    }
}

/// The `q` quantile of sorted nanoseconds (nearest rank).
pub fn percentile(sorted_ns: &[u64], q: f64) -> Duration {
    if sorted_ns.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted_ns.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_ns.len()) - 1;
    Duration::from_nanos(sorted_ns[index])
}

/// The heading line's facts.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Request body size in bytes.
    pub pod_bytes: usize,
    /// podid's answer size in bytes.
    pub answer_bytes: usize,
    /// Connections.
    pub concurrency: usize,
    /// Measured seconds per run.
    pub duration: Duration,
    /// CPU model.
    pub cpu: String,
    /// Cores.
    pub cores: usize,
    /// Requests per second of the open-loop runs.
    pub rate: u32,
    /// podid's handler without sockets.
    pub handler: HandlerCost,
}

/// The whole table, goals included.
pub fn table(setup: &Setup, closed: &[Row], open: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "webhook benchmark: pod {:.1} KB (answer {:.1} KB), concurrency {}, {} s per run, {}, {} cores",
        setup.pod_bytes as f64 / 1024.0,
        setup.answer_bytes as f64 / 1024.0,
        setup.concurrency,
        setup.duration.as_secs_f64(),
        setup.cpu,
        setup.cores
    );
    let _ = writeln!(
        s,
        "{:<10} {:<11} {:>7} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>11} {:>9} {:>11}",
        "server",
        "mode",
        "req/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "errors",
        "srv cores",
        "srv CPU/req",
        "gen cores",
        "other cores"
    );
    for row in closed {
        line(&mut s, row);
    }
    let ratio = throughput_ratio(closed);
    let _ = writeln!(s, "{:<10} {:<11} {:>7.2}", "podid/bare", "ratio", ratio);
    for row in open {
        line(&mut s, row);
    }
    footer(&mut s, setup, ratio, closed, open);
    s
}

/// The verdicts on the goals, the handler's own cost, and anything that went wrong.
fn footer(s: &mut String, setup: &Setup, ratio: f64, closed: &[Row], open: &[Row]) {
    let podid_p99 = open
        .iter()
        .find(|r| r.server == "podid")
        .map_or(Duration::MAX, |r| r.p99);
    let errors: usize = closed.iter().chain(open).map(|r| r.errors).sum();
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let _ = writeln!(
        s,
        "goal: ratio >= {GOAL_RATIO:.2}: {}; p99 <= {} ms at {} req/s: {}; errors: {errors}",
        verdict(ratio >= GOAL_RATIO),
        GOAL_P99.as_millis(),
        setup.rate,
        verdict(podid_p99 <= GOAL_P99),
    );
    let _ = writeln!(
        s,
        "podid handler alone, one thread: {:.0} us per review (parsing the body into a serde_json::Value, which it no longer does: {:.0} us)",
        setup.handler.review.as_secs_f64() * 1e6,
        setup.handler.parse.as_secs_f64() * 1e6
    );
    let disturbed = closed
        .iter()
        .chain(open)
        .filter_map(|r| r.other_cores)
        .fold(0.0, f64::max);
    if disturbed > DISTURBED_CORES {
        let _ = writeln!(
            s,
            "warning: other processes used up to {disturbed:.2} cores during a run; numbers are skewed"
        );
    }
    for row in closed.iter().chain(open) {
        for (message, count) in &row.error_kinds {
            let _ = writeln!(s, "  {} {}: {count} x {message}", row.server, row.mode);
        }
    }
}

fn throughput_ratio(closed: &[Row]) -> f64 {
    let rate = |name| closed.iter().find(|r| r.server == name).map(|r| r.rate);
    match (rate("podid"), rate("bare")) {
        (Some(podid), Some(bare)) if bare > 0.0 => podid / bare,
        _ => 0.0,
    }
}

fn line(s: &mut String, row: &Row) {
    let per_request = row.server_per_request.map_or("-".to_owned(), |d| {
        format!("{:.0} us", d.as_secs_f64() * 1e6)
    });
    let _ = writeln!(
        s,
        "{:<10} {:<11} {:>7.0} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>11} {:>9} {:>11}",
        row.server,
        row.mode,
        row.rate,
        ms(row.p50),
        ms(row.p99),
        ms(row.p999),
        ms(row.max),
        row.errors,
        cores(row.server_cores),
        per_request,
        cores(row.client_cores),
        cores(row.other_cores),
    );
}

fn cores(c: Option<f64>) -> String {
    c.map_or("-".to_owned(), |c| format!("{c:.2}"))
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_the_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.50), Duration::from_nanos(500));
        assert_eq!(percentile(&v, 0.99), Duration::from_nanos(990));
        assert_eq!(percentile(&v, 0.999), Duration::from_nanos(999));
        assert_eq!(percentile(&[7], 0.99), Duration::from_nanos(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
