//! `podid-proxy`: `serve` (the IMDS proxy), `init` (the redirect) and `wait-ready` (the legacy postStart hook).

use std::process::ExitCode;

use clap::Parser;
use podid_sidecar::cli::{Cli, Command};

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Init(args) => podid_sidecar::init::main(args),
        Command::WaitReady(args) => podid_sidecar::wait_ready::main(args),
        Command::Serve(args) => podid_sidecar::proxy::main(*args),
    }
}
