//! One benchmark run: start the processes, measure each metric, and assemble the report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::artifacts::{self, Artifacts};
use crate::cpu;
use crate::lines::{self, Footprint, Mode};
use crate::load::{self, Launch};
use crate::measure::{self, Memory};
use crate::redirect::{self, RedirectEnv};
use crate::report::{Report, Stats, count};
use crate::servers::{self, Process, free_addr, token_path, wait_for_200};

/// How long a server may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Requests per target and mode.
    pub requests: usize,
    /// Connections of the concurrent mode.
    pub concurrency: usize,
    /// Rounds the requests are split into, alternating between targets.
    pub rounds: usize,
    /// Proxy starts timed.
    pub startup_runs: usize,
    /// Proxies started side by side for the idle memory reading.
    pub idle_proxies: usize,
    /// Pause between ready and the idle memory reading.
    pub settle: Duration,
    /// A prebuilt proxy instead of building it.
    pub proxy: Option<PathBuf>,
    /// A prebuilt emulator instead of building it.
    pub emulator: Option<PathBuf>,
    /// Also measure through the iptables redirect (when root).
    pub redirect: bool,
    /// Also build and measure a statically linked proxy (glibc `crt-static`).
    pub static_build: bool,
    /// How long to wait for other processes to quiet down before the latency runs.
    pub patience: Duration,
    /// CPUs every process is pinned to, if any.
    pub pin: Option<String>,
}

/// A load target: its name and where its load children run.
type Target = (&'static str, Launch);

/// Proxies started side by side, ready and settled, the first kept for the load.
#[derive(Debug)]
struct Idle {
    proxy: Process,
    listen: SocketAddr,
    samples: Vec<Memory>,
    mappings: Vec<(String, u64)>,
}

/// Runs everything and returns the printed report.
pub fn run(plan: &Plan) -> Result<String, String> {
    let artifacts = artifacts::get(plan.proxy.clone(), plan.emulator.clone())?;
    let static_proxy = match plan.static_build {
        true => Some(artifacts::build_static()?),
        false => None,
    };
    // After the builds, before any process under test starts.
    if let Some(cpus) = &plan.pin {
        cpu::pin(cpus)?;
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let world = servers::write_world(dir.path())?;
    let load_before = loadavg();
    let (emulator, imds) = start_emulator(&artifacts.emulator, &world, dir.path())?;
    let mut footprints = Vec::new();
    if let Some(path) = &static_proxy {
        footprints.push(footprint(plan, "sidecar, static glibc", path, imds, dir.path())?.0);
    }
    let (main, idle) = footprint(plan, "sidecar profile", &artifacts.proxy, imds, dir.path())?;
    footprints.insert(0, main);
    let (netns, skipped) = redirect_env(plan, &artifacts, &world, dir.path())?;
    let targets = targets(imds, idle.listen, netns.as_ref())?;
    let mut memory = vec![("idle (the proxy then loaded)".to_owned(), idle.samples[0])];
    let mut pids = vec![emulator.pid(), idle.proxy.pid()];
    pids.extend(netns.iter().flat_map(RedirectEnv::pids));
    let (modes, others) = measure_modes(plan, &targets, &mut memory, &pids)?;
    let mut report_lines = lines::footprint(&footprints[0]);
    report_lines.extend(lines::loaded(&memory[1..]));
    report_lines.extend(footprints.iter().skip(1).flat_map(lines::footprint));
    report_lines.extend(
        modes
            .iter()
            .flat_map(|m| lines::latency(m, netns.is_some())),
    );
    memory.extend(other_idle_rows(&footprints));
    let report = Report {
        header: header(plan, &load_before, others),
        lines: report_lines,
        memory,
        mappings: idle.mappings,
        targets: targets.iter().map(|t| t.0).collect(),
        modes,
        skipped,
    };
    Ok(report.compose())
}

/// The emulated IMDS on loopback, answering tokens.
fn start_emulator(
    emulator: &Path,
    world: &Path,
    dir: &Path,
) -> Result<(Process, SocketAddr), String> {
    let imds = free_addr()?;
    let cmd = servers::emulator_command(Command::new(emulator), world, imds);
    let mut process = Process::spawn("emulator", cmd, dir)?;
    wait_for_200(&mut process, imds, &token_path(), READY_TIMEOUT)?;
    Ok((process, imds))
}

/// (a) and (b) on loopback, and with the namespaces (a′), (b′) and (c).
fn targets(
    imds: SocketAddr,
    proxy: SocketAddr,
    netns: Option<&RedirectEnv>,
) -> Result<Vec<Target>, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let local = |addr| Launch {
        argv: vec![me.clone().into()],
        addr,
    };
    let mut targets: Vec<Target> = vec![
        ("(a) direct → IMDS", local(imds)),
        ("(b) proxy (cache hit)", local(proxy)),
    ];
    targets.extend(netns.iter().flat_map(|env| env.targets()));
    Ok(targets)
}

/// Times `plan.startup_runs` starts of `proxy`, then starts
/// `plan.idle_proxies` of it side by side and reads their memory once ready.
fn footprint(
    plan: &Plan,
    label: &'static str,
    proxy: &Path,
    imds: SocketAddr,
    dir: &Path,
) -> Result<(Footprint, Idle), String> {
    eprintln!("proxy-bench: {label}: timing {} starts", plan.startup_runs);
    let startup = measure::startup(proxy, imds, plan.startup_runs, dir)?;
    let idle = idle_proxies(plan, proxy, imds, dir)?;
    let size = std::fs::metadata(proxy).map_err(|e| e.to_string())?.len();
    let footprint = Footprint {
        label,
        size,
        startup,
        idle: idle.samples.clone(),
    };
    Ok((footprint, idle))
}

/// Starts the proxies at once and reads their memory once all are ready and settled.
fn idle_proxies(plan: &Plan, proxy: &Path, imds: SocketAddr, dir: &Path) -> Result<Idle, String> {
    let mut running = Vec::new();
    for i in 0..plan.idle_proxies.max(1) {
        let (listen, admin) = (free_addr()?, free_addr()?);
        let mut cmd = Command::new(proxy);
        cmd.args(servers::proxy_args(listen, admin, imds));
        let process = Process::spawn(&format!("proxy-{i}"), cmd, dir)?;
        running.push((process, listen, admin));
    }
    // Ready means the default identity's ARM token, the one the load asks for, is cached.
    for (process, _, admin) in &mut running {
        wait_for_200(process, *admin, "/ready", READY_TIMEOUT)?;
    }
    std::thread::sleep(plan.settle);
    let samples = running
        .iter()
        .map(|(p, _, _)| measure::memory(p.pid()))
        .collect::<Result<Vec<_>, _>>()?;
    let (proxy, listen, _) = running.swap_remove(0);
    let mappings = measure::rss_by_mapping(proxy.pid());
    Ok(Idle {
        proxy,
        listen,
        samples,
        mappings,
    })
}

/// Memory rows of the idle proxies other than the loaded one.
fn other_idle_rows(footprints: &[Footprint]) -> Vec<(String, Memory)> {
    let mut rows = Vec::new();
    for (n, f) in footprints.iter().enumerate() {
        for (i, m) in f.idle.iter().enumerate().skip(usize::from(n == 0)) {
            rows.push((format!("idle ({}, proxy {i})", f.label), *m));
        }
    }
    rows
}

/// The namespaces for (c), or why they are skipped.
fn redirect_env(
    plan: &Plan,
    artifacts: &Artifacts,
    world: &Path,
    dir: &Path,
) -> Result<(Option<RedirectEnv>, Option<String>), String> {
    if !plan.redirect {
        return Ok((None, Some("--no-redirect given".to_owned())));
    }
    if let Some(why) = redirect::skip_reason() {
        return Ok((None, Some(why.to_owned())));
    }
    eprintln!("proxy-bench: building the pod and node network namespaces for (c)");
    Ok((Some(RedirectEnv::start(artifacts, world, dir)?), None))
}

/// Sequential, then concurrent; reads the proxy's memory after each. Also
/// how many cores other processes kept busy meanwhile. `pids` are the
/// servers, the loaded proxy second.
fn measure_modes(
    plan: &Plan,
    targets: &[Target],
    memory: &mut Vec<(String, Memory)>,
    pids: &[u32],
) -> Result<(Vec<Mode>, f64), String> {
    if !plan.patience.is_zero() {
        eprintln!(
            "proxy-bench: waiting up to {:?} for a quiet machine",
            plan.patience
        );
        cpu::wait_for_quiet(pids, plan.patience);
    }
    let before = cpu::sample(pids);
    let mut conns = vec![1, plan.concurrency.max(1)];
    conns.dedup();
    let (mut served, mut modes) = (0, Vec::new());
    for c in conns {
        eprintln!(
            "proxy-bench: {} requests per target, {c} connection(s)",
            plan.requests
        );
        let stats = measure_mode(plan, targets, c)?;
        served += plan.requests;
        let what = format!("after {} requests (then c={c})", count(served));
        memory.push((what, measure::memory(pids[1])?));
        modes.push(Mode { conns: c, stats });
    }
    Ok((modes, cpu::others(before, cpu::sample(pids))))
}

/// Splits the requests into rounds; each round loads every target in turn
/// (reversed every other round), so drift on a shared machine hits all alike.
fn measure_mode(plan: &Plan, targets: &[Target], conns: usize) -> Result<Vec<Stats>, String> {
    let rounds = plan.rounds.clamp(1, plan.requests.max(1));
    let path = token_path();
    let mut runs = vec![Vec::new(); targets.len()];
    for round in 0..rounds {
        let share = plan.requests / rounds + usize::from(round < plan.requests % rounds);
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            runs[i].push(load::run(&targets[i].1, &path, share, conns)?);
        }
    }
    Ok(runs.iter().map(|r| Stats::of(r)).collect())
}

fn header(plan: &Plan, load_before: &str, others: f64) -> String {
    let busy = match others < cpu::QUIET_CORES {
        true => "",
        false => " (busy: expect noise)",
    };
    let pinned = match &plan.pin {
        Some(cpus) => format!("everything pinned to CPU {cpus}"),
        None => "not pinned".to_owned(),
    };
    format!(
        "proxy benchmark: {}, {} cores ({pinned}); {} requests per target and mode in {} interleaved rounds\n\
         other processes kept {others:.2} cores busy during the latency runs{busy}; load average {load_before} → {}",
        cpu_model(),
        cores(),
        count(plan.requests),
        plan.rounds,
        loadavg(),
    )
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned())
}

/// Online CPUs (not `available_parallelism`, which shrinks when pinned).
fn cores() -> usize {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines().filter(|l| l.starts_with("processor")).count()
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}
