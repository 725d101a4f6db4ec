//! `podid-node-guard`: parses flags, installs the crypto provider, logs, runs the library.

use clap::Parser;
use podid_node_guard::args::{Cli, Command, init_logging};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One provider for the whole process; kube and rustls panic at run time without it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            init_logging(args.log_format, &args.log);
            let config = args.to_config()?;
            podid_node_guard::run::run(config, podid_node_guard::run::termination_signal()).await?;
        }
        Command::Cleanup(args) => {
            let removed = podid_node_guard::nft::cleanup(&args.nft, &args.table).await?;
            println!("{removed}");
        }
    }
    Ok(())
}
