//! `proxy-bench`: podid-proxy's binary size, start time, memory and added latency against issue #3's budgets, side by side in one run.
//!
//! The emulated IMDS (`podid-azure-emulator`, release) and the proxy
//! (`podid-proxy`, `sidecar` profile, both built here with cargo) run as
//! processes of their own; so does every load run (this binary's hidden
//! `load` subcommand), so the load generator shares a runtime with neither.
//! Targets: (a) IMDS directly, what an app pays without podid; (b) the proxy
//! answering from its cache. As root, in a node and a pod network namespace
//! as tests/e2e builds them: (a′) the pod's path to IMDS over the veth, (b′)
//! the proxy on the pod's loopback and (c) the app's request to
//! 169.254.169.254:80 through podid-init's iptables REDIRECT to the proxy.
//! Requests alternate between targets in rounds, so a busy neighbour on a
//! shared machine disturbs every target alike.

mod artifacts;
mod cpu;
mod lines;
mod load;
mod measure;
mod redirect;
mod report;
mod run;
mod servers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Benchmarks podid-proxy against issue #3's budgets.
#[derive(Debug, Parser)]
#[command(name = "proxy-bench")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Requests per target and mode (sequential, then concurrent).
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Keep-alive connections of the concurrent mode.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Rounds the requests are split into, alternating between targets.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Proxy starts timed for start → listening.
    #[arg(long, default_value_t = 30)]
    startup_runs: usize,
    /// A CI smoke test: 1 000 requests, 2 rounds, 5 starts, 2 idle proxies.
    #[arg(long)]
    quick: bool,
    /// Use this podid-proxy instead of building it with `--profile sidecar`.
    #[arg(long)]
    proxy: Option<PathBuf>,
    /// Use this podid-azure-emulator instead of building it with `--release`.
    #[arg(long)]
    emulator: Option<PathBuf>,
    /// Skip (c), the iptables REDIRECT in network namespaces, even as root.
    #[arg(long)]
    no_redirect: bool,
    /// Also build (in target/proxy-bench-static) and measure a statically
    /// linked proxy: glibc `crt-static`, standing in for the image's static
    /// musl build where the musl target is not installed.
    #[arg(long = "static")]
    static_build: bool,
    /// Seconds to wait, before the latency runs, for other processes to use
    /// under a quarter of a core (a shared machine's builds add noise).
    #[arg(long, default_value_t = 0.0)]
    patience: f64,
    /// Pin everything (load generator, proxy, emulator) to these CPUs
    /// (`taskset` list, e.g. `0`): without a cross-CPU wake-up per request,
    /// the latency is the software's own cost.
    #[arg(long)]
    pin: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Child process: one load run; prints what it measured as JSON.
    #[command(hide = true)]
    Load(load::LoadArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    let Cli {
        command,
        requests,
        concurrency,
        rounds,
        startup_runs,
        quick,
        proxy,
        emulator,
        no_redirect,
        static_build,
        patience,
        pin,
    } = Cli::parse();
    if let Some(Command::Load(args)) = command {
        load::main(args)?;
        return Ok(ExitCode::SUCCESS);
    }
    let plan = run::Plan {
        requests: if quick { requests.min(1_000) } else { requests },
        concurrency,
        rounds: if quick { rounds.min(2) } else { rounds },
        startup_runs: if quick {
            startup_runs.min(5)
        } else {
            startup_runs
        },
        idle_proxies: if quick { 2 } else { 5 },
        settle: Duration::from_millis(if quick { 200 } else { 1_000 }),
        proxy,
        emulator,
        redirect: !no_redirect,
        static_build,
        patience: Duration::try_from_secs_f64(patience)?,
        pin,
    };
    match run::run(&plan) {
        Ok(report) => {
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("proxy-bench: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
