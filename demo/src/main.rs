//! `podid-demo`: parses flags, installs the crypto provider, runs the demo on a thread of its own, and cleans up on Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use podid_demo::{Args, cleanup, run};

fn main() -> ExitCode {
    // One provider for the whole process (the workspace links ring only).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    // The steps run on their own thread (it moves into the node's network
    // namespace); this one waits for them or for a signal.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let flow = std::thread::spawn(move || {
        let _ = done_tx.send(run(&args));
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podid-demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("podid-demo: installing the SIGTERM handler: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            code = done_rx => {
                let _ = flow.join();
                code.unwrap_or(ExitCode::FAILURE)
            }
            _ = tokio::signal::ctrl_c() => interrupted("Ctrl-C"),
            _ = term.recv() => interrupted("SIGTERM"),
        }
    })
}

fn interrupted(what: &str) -> ExitCode {
    let removed = cleanup::on_signal();
    let left = match removed.left_behind.is_empty() {
        true => "nothing left behind".to_owned(),
        false => format!("LEFT BEHIND: {}", removed.left_behind.join(", ")),
    };
    println!(
        "demo        stopped  by {what}: killed {} processes, deleted its network namespaces and files; {left}",
        removed.processes
    );
    ExitCode::from(130)
}
