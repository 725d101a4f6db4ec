//! `podid-azure-emulator`: serves emulated IMDS endpoints (one per VM) and Azure AD until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use podid_azure_emulator::file::{self, VmFlag};
use podid_azure_emulator::{AzureState, Emulator, EmulatorConfig, ImdsLimits, Listen, Rate};
use rustls::ServerConfig;
use tracing::info;

/// Name of the VM `--imds-listen` stands for.
const DEFAULT_VM: &str = "vm0";

#[derive(Debug, Parser)]
#[command(version, about = "Emulated Azure IMDS and Azure AD for podid's tests")]
struct Args {
    /// Identities file (YAML or JSON): identities, service principals, VMs,
    /// scale sets and initial assignments.
    #[arg(long, env = "PODID_EMULATOR_IDENTITIES")]
    identities: Option<PathBuf>,
    /// An IMDS endpoint: name=NAME,listen=ADDR[,scale-set=SET]; repeatable
    /// (`;`-separated in the environment). Undeclared VMs are created.
    #[arg(long = "vm", env = "PODID_EMULATOR_VMS", value_delimiter = ';')]
    vms: Vec<VmFlag>,
    /// IMDS address of VM `vm0` (shorthand for --vm name=vm0,listen=ADDR).
    #[arg(long, env = "PODID_EMULATOR_IMDS_LISTEN")]
    imds_listen: Option<SocketAddr>,
    /// Azure AD address; Azure AD is off without it.
    #[arg(long, env = "PODID_EMULATOR_AAD_LISTEN")]
    aad_listen: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS on the Azure AD address.
    #[arg(long, env = "PODID_EMULATOR_AAD_TLS_CERT", requires = "aad_tls_key")]
    aad_tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS on the Azure AD address.
    #[arg(long, env = "PODID_EMULATOR_AAD_TLS_KEY", requires = "aad_tls_cert")]
    aad_tls_key: Option<PathBuf>,
    /// Managed-identity token requests per second per VM (0: unlimited).
    #[arg(long, env = "PODID_EMULATOR_IMDS_RATE", default_value_t = 20.0)]
    imds_rate: f64,
    /// Concurrent managed-identity token requests per VM (0: unlimited).
    #[arg(long, env = "PODID_EMULATOR_IMDS_CONCURRENCY", default_value_t = 5)]
    imds_concurrency: usize,
    /// Other IMDS requests per second per VM (0: unlimited).
    #[arg(long, env = "PODID_EMULATOR_IMDS_METADATA_RATE", default_value_t = 5.0)]
    imds_metadata_rate: f64,
    /// Log format.
    #[arg(long, env = "PODID_EMULATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One crypto provider for the whole process (the workspace links ring only).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    init_logging(args.log_format);
    let emulator = Emulator::start(config(args)?).await?;
    shutdown_signal().await?;
    info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

fn config(args: Args) -> anyhow::Result<EmulatorConfig> {
    let Args {
        identities,
        mut vms,
        imds_listen,
        aad_listen,
        aad_tls_cert,
        aad_tls_key,
        imds_rate,
        imds_concurrency,
        imds_metadata_rate,
        log_format: _,
    } = args;
    let (mut state, file_listens) = match &identities {
        Some(path) => file::load(path)?,
        None => (AzureState::default(), Vec::new()),
    };
    if let Some(listen) = imds_listen {
        vms.push(VmFlag {
            name: DEFAULT_VM.into(),
            listen,
            scale_set: None,
        });
    }
    let mut imds: Vec<(String, Listen)> = file_listens
        .into_iter()
        .filter(|(name, _)| !vms.iter().any(|f| &f.name == name))
        .map(|(name, addr)| (name, Listen::Addr(addr)))
        .collect();
    for flag in &vms {
        file::apply_vm_flag(&mut state, flag)?;
        imds.push((flag.name.clone(), Listen::Addr(flag.listen)));
    }
    let tls = aad_tls(aad_tls_cert, aad_tls_key)?;
    let positive = |n: f64| (n > 0.0).then(|| Rate::per_second(n));
    Ok(EmulatorConfig {
        state,
        imds,
        aad: aad_listen.map(|addr| (Listen::Addr(addr), tls)),
        limits: ImdsLimits {
            identity_rate: positive(imds_rate),
            identity_concurrency: (imds_concurrency > 0).then_some(imds_concurrency),
            metadata_rate: positive(imds_metadata_rate),
        },
    })
}

fn aad_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    let cert = std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
    let key = std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?;
    Ok(Some(podid_azure_emulator::tls_config_from_pem(
        &cert, &key,
    )?))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
