//! `podid-azure-emulator`: serves emulated IMDS endpoints (one per VM), Azure AD and ARM until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use podid_azure_emulator::file::{self, VmFlag};
use podid_azure_emulator::{
    ArmConfig, ArmLimits, AzureState, Emulator, EmulatorConfig, ImdsLimits, Listen, PatchAnswer,
    Rate, UnknownIdentityAnswer,
};
use rustls::ServerConfig;
use tracing::info;

/// Name of the VM `--imds-listen` stands for.
const DEFAULT_VM: &str = "vm0";

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Emulated Azure IMDS, Azure AD and ARM for podid's tests"
)]
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
    #[command(flatten)]
    arm: ArmArgs,
}

/// Azure Resource Manager (GET/PATCH of VM and scale-set identities), HTTPS only.
#[derive(Debug, clap::Args)]
struct ArmArgs {
    /// ARM address; ARM is off without it.
    #[arg(long, env = "PODID_EMULATOR_ARM_LISTEN")]
    arm_listen: Option<SocketAddr>,
    /// PEM certificate chain for ARM (defaults to Azure AD's).
    #[arg(long, env = "PODID_EMULATOR_ARM_TLS_CERT", requires = "arm_tls_key")]
    arm_tls_cert: Option<PathBuf>,
    /// PEM private key for ARM (defaults to Azure AD's).
    #[arg(long, env = "PODID_EMULATOR_ARM_TLS_KEY", requires = "arm_tls_cert")]
    arm_tls_key: Option<PathBuf>,
    /// How long a VM identity change takes, in milliseconds (Azure: 10000–20000).
    #[arg(long, env = "PODID_EMULATOR_ARM_VM_LATENCY_MS", default_value_t = 0)]
    arm_vm_latency_ms: u64,
    /// How long a scale-set identity change takes, in milliseconds (Azure: 35000–60000).
    #[arg(long, env = "PODID_EMULATOR_ARM_VMSS_LATENCY_MS", default_value_t = 0)]
    arm_vmss_latency_ms: u64,
    /// Writes per VM or scale set: refill per minute (0: unlimited).
    #[arg(
        long,
        env = "PODID_EMULATOR_ARM_RESOURCE_WRITES_PER_MINUTE",
        default_value_t = 4.0
    )]
    arm_resource_writes_per_minute: f64,
    /// Writes per VM or scale set: bucket size.
    #[arg(
        long,
        env = "PODID_EMULATOR_ARM_RESOURCE_WRITE_BURST",
        default_value_t = 12.0
    )]
    arm_resource_write_burst: f64,
    /// Writes per subscription: refill per minute (0: unlimited).
    #[arg(
        long,
        env = "PODID_EMULATOR_ARM_SUBSCRIPTION_WRITES_PER_MINUTE",
        default_value_t = 500.0
    )]
    arm_subscription_writes_per_minute: f64,
    /// Writes per subscription: bucket size.
    #[arg(
        long,
        env = "PODID_EMULATOR_ARM_SUBSCRIPTION_WRITE_BURST",
        default_value_t = 1500.0
    )]
    arm_subscription_write_burst: f64,
    /// Reads per subscription: refill per minute (0: unlimited).
    #[arg(
        long,
        env = "PODID_EMULATOR_ARM_SUBSCRIPTION_READS_PER_MINUTE",
        default_value_t = 1500.0
    )]
    arm_subscription_reads_per_minute: f64,
    /// Reads per subscription: bucket size.
    #[arg(
        long,
        env = "PODID_EMULATOR_ARM_SUBSCRIPTION_READ_BURST",
        default_value_t = 250.0
    )]
    arm_subscription_read_burst: f64,
    /// Answer a PATCH with 202 Accepted instead of 200 + provisioningState Updating.
    #[arg(long, env = "PODID_EMULATOR_ARM_ACCEPTED")]
    arm_accepted: bool,
    /// Refuse unknown identities with 404 instead of 400 FailedIdentityOperation.
    #[arg(long, env = "PODID_EMULATOR_ARM_UNKNOWN_IDENTITY_404")]
    arm_unknown_identity_404: bool,
    /// Accept only JWTs for https://management.azure.com/ of the emulator's tenant.
    #[arg(long, env = "PODID_EMULATOR_ARM_CHECK_TOKENS")]
    arm_check_tokens: bool,
}

impl ArmArgs {
    fn config(&self) -> ArmConfig {
        let rate = |per_minute: f64, burst: f64| {
            (per_minute > 0.0 && burst > 0.0).then(|| Rate::per_minute(per_minute, burst))
        };
        ArmConfig {
            limits: ArmLimits {
                resource_write: rate(
                    self.arm_resource_writes_per_minute,
                    self.arm_resource_write_burst,
                ),
                subscription_write: rate(
                    self.arm_subscription_writes_per_minute,
                    self.arm_subscription_write_burst,
                ),
                subscription_read: rate(
                    self.arm_subscription_reads_per_minute,
                    self.arm_subscription_read_burst,
                ),
            },
            vm_latency: Duration::from_millis(self.arm_vm_latency_ms),
            scale_set_latency: Duration::from_millis(self.arm_vmss_latency_ms),
            patch_answer: match self.arm_accepted {
                true => PatchAnswer::Accepted202,
                false => PatchAnswer::Updating200,
            },
            unknown_identity: match self.arm_unknown_identity_404 {
                true => UnknownIdentityAnswer::NotFound404,
                false => UnknownIdentityAnswer::FailedIdentityOperation400,
            },
            check_tokens: self.arm_check_tokens,
        }
    }
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
        arm,
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
    let arm_listen = arm_listen(&arm, &aad_tls_cert, &aad_tls_key)?;
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
        arm: arm_listen,
        arm_config: arm.config(),
    })
}

/// ARM's listener and TLS: its own certificate, else Azure AD's; HTTPS only.
fn arm_listen(
    arm: &ArmArgs,
    aad_cert: &Option<PathBuf>,
    aad_key: &Option<PathBuf>,
) -> anyhow::Result<Option<(Listen, Arc<ServerConfig>)>> {
    let Some(addr) = arm.arm_listen else {
        return Ok(None);
    };
    let tls = match &arm.arm_tls_cert {
        Some(_) => aad_tls(arm.arm_tls_cert.clone(), arm.arm_tls_key.clone())?,
        None => aad_tls(aad_cert.clone(), aad_key.clone())?,
    };
    let Some(tls) = tls else {
        anyhow::bail!(
            "ARM is served over HTTPS only: give --arm-tls-cert and --arm-tls-key (or Azure AD's)"
        );
    };
    Ok(Some((Listen::Addr(addr), tls)))
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
