//! `podid-controller`: parses flags, installs the crypto provider, logs, runs the library.

use clap::Parser;
use podid_controller::args::{ControllerArgs, init_logging};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One provider for the whole process; kube, reqwest and rustls panic at run time without it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = ControllerArgs::parse();
    init_logging(args.log_format, &args.log);
    let config = args.to_config(|name| std::env::var(name).ok())?;
    podid_controller::run::run(config, termination_signal()).await?;
    Ok(())
}

/// SIGTERM (the kubelet) or Ctrl-C.
async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
