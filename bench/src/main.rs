//! `webhook-bench`: podid's webhook against a bare axum + rustls server, same machine, one run.
//!
//! Each server runs in a child process of its own (this binary again, `serve-podid` or
//! `serve-bare`) with the same tokio runtime, so neither shares a runtime with the load
//! generator and both get the same resources.
// A bench binary: a failure to set up the measurement should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cpu;
mod handler;
mod load;
mod pod;
mod report;
mod run;
mod servers;
mod slow;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The allocator `podid-webhook` ships with (webhook/src/main.rs), for both servers
/// alike: the bench re-executes itself as either.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks podid's webhook against the bare axum + rustls stack it is built on.
#[derive(Debug, Parser)]
#[command(name = "webhook-bench")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Concurrent keep-alive TLS connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unrecorded seconds before each run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Requests per second of the open-loop runs.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Seconds to wait for an idle machine before each run (0: do not wait).
    #[arg(long, default_value_t = 120.0)]
    patience: f64,
    /// Times a run is repeated when other processes took CPU during it.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Short runs for a CI smoke test: 1 s each, 0.2 s warm-up, no waiting, no repeats.
    #[arg(long)]
    quick: bool,
    /// podid's identities file.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/identities.yaml"))]
    identities: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Child process: podid's webhook; prints its address, exits when stdin closes.
    #[command(hide = true)]
    ServePodid {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        identities: PathBuf,
    },
    /// Child process: the bare server; prints its address, exits when stdin closes.
    #[command(hide = true)]
    ServeBare {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        response: PathBuf,
    },
    /// A normal client's latency with idle keep-alive connections and slowloris clients open.
    SlowClients {
        #[arg(long, default_value_t = 1000)]
        idle: usize,
        #[arg(long, default_value_t = 100)]
        slowloris: usize,
    },
    /// The handler alone, `count` times on one thread (for `valgrind --tool=callgrind` or `perf`).
    Handler {
        #[arg(long, default_value_t = 10_000)]
        count: u32,
        /// Loop `serde_json::from_slice::<Value>` of the body instead (the old parse, for reference).
        #[arg(long)]
        value_parse: bool,
    },
}

fn main() -> anyhow::Result<()> {
    // One provider for the whole process; rustls panics at run time without it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Cli {
        command,
        concurrency,
        duration,
        warmup,
        rate,
        patience,
        retries,
        quick,
        identities,
    } = Cli::parse();
    match command {
        Some(Command::ServePodid {
            cert,
            key,
            identities,
        }) => servers::serve_podid(&cert, &key, &identities),
        Some(Command::ServeBare {
            cert,
            key,
            response,
        }) => servers::serve_bare(&cert, &key, &response),
        Some(Command::SlowClients { idle, slowloris }) => slow::run(&identities, idle, slowloris),
        Some(Command::Handler { count, value_parse }) => {
            handler::repeat(&identities, count, value_parse)
        }
        None => {
            let (duration, warmup, patience, retries) = if quick {
                (1.0, 0.2, 0.0, 0)
            } else {
                (duration, warmup, patience, retries)
            };
            let seconds = |s: f64, flag: &str| {
                Duration::try_from_secs_f64(s).map_err(|e| anyhow::anyhow!("--{flag} {s}: {e}"))
            };
            run::run(&run::Plan {
                concurrency: concurrency.max(1),
                duration: seconds(duration, "duration")?,
                warmup: seconds(warmup, "warmup")?,
                rate,
                identities,
                patience: seconds(patience, "patience")?,
                retries,
            })
        }
    }
}
