//! `controller-bench`: the real executor and ARM client against the ARM stand-in over HTTPS; a burst of pods, an idle spell, churn.
//!
//! Prints one table (recorded in docs/BENCHMARKS.md, `## Controller`).
//! `--full` is issue #4's scale: 1000 pods on 100 nodes (5 scale sets of 18
//! instances and 10 standalone VMs), 50 identities; without it, a smaller
//! run for CI.
// A bench binary: a failure to set up the measurement should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod phases;
mod world;

use std::time::Duration;

use clap::Parser;

/// Benchmarks the controller's executor against the ARM stand-in.
#[derive(Debug, Parser)]
#[command(name = "controller-bench")]
struct Cli {
    /// Issue #4's scale: 1000 pods, 100 nodes, 50 identities, 3 s PATCHes.
    #[arg(long)]
    full: bool,
    /// Fixed latency of every identity PATCH (ms); default 3000 (full) or 600.
    #[arg(long)]
    patch_latency_ms: Option<u64>,
    /// The executor's coalescing window (ms).
    #[arg(long, default_value_t = 500)]
    window_ms: u64,
    /// Seconds of churn (pods deleted and recreated on other nodes).
    #[arg(long)]
    churn_secs: Option<u64>,
    /// Seed of the churn's choices.
    #[arg(long, default_value_t = 4)]
    seed: u64,
}

/// The size and pace of one run.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub pods: usize,
    pub scale_sets: usize,
    pub instances: usize,
    pub vms: usize,
    pub identities: usize,
    pub latency: Duration,
    pub window: Duration,
    /// Idle spell, with verification every quarter of it.
    pub idle: Duration,
    pub churn: Duration,
    /// Grace period before an unneeded identity is removed.
    pub grace: Duration,
    pub seed: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ms = Duration::from_millis;
    let mut scale = match cli.full {
        true => Scale {
            pods: 1000,
            scale_sets: 5,
            instances: 18,
            vms: 10,
            identities: 50,
            latency: ms(3000),
            window: ms(cli.window_ms),
            idle: Duration::from_secs(20),
            churn: Duration::from_secs(30),
            grace: Duration::from_secs(5),
            seed: cli.seed,
        },
        false => Scale {
            pods: 200,
            scale_sets: 2,
            instances: 8,
            vms: 4,
            identities: 20,
            latency: ms(600),
            window: ms(cli.window_ms),
            idle: Duration::from_secs(4),
            churn: Duration::from_secs(6),
            grace: Duration::from_secs(2),
            seed: cli.seed,
        },
    };
    if let Some(l) = cli.patch_latency_ms {
        scale.latency = ms(l);
    }
    if let Some(c) = cli.churn_secs {
        scale.churn = Duration::from_secs(c);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(phases::run(scale))
}
