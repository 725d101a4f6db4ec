//! `podid`: the command-line tool. `podid inject` prints manifests as the webhook would admit them.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use podid_core::model::IdentityIndex;
use podid_webhook::args::InjectArgs;
use podid_webhook::identities::load_file;
use podid_webhook::inject_cli::{InjectError, inject_documents};

#[derive(Parser, Debug)]
#[command(
    name = "podid",
    version,
    about = "podid: per-pod Azure AD identities for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print manifests with podid's injection applied, or the denial (exit code 1).
    Inject {
        /// Manifest file (Pod, Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet, List; multi-document); '-' for stdin.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// AzureIdentity / AzureIdentityBinding objects to resolve against (multi-document YAML).
        #[arg(long, env = "PODID_IDENTITIES_FILE")]
        identities_file: Option<PathBuf>,
        /// Namespace of objects that name none.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        #[command(flatten)]
        inject: InjectArgs,
    },
}

fn main() -> ExitCode {
    let Cli {
        command:
            Command::Inject {
                file,
                identities_file,
                namespace,
                inject,
            },
    } = Cli::parse();
    match run(&file, identities_file.as_deref(), &namespace, &inject) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("podid inject: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    file: &std::path::Path,
    identities: Option<&std::path::Path>,
    namespace: &str,
    inject: &InjectArgs,
) -> Result<(), String> {
    let input = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading stdin: {e}"))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?
    };
    let index = match identities {
        Some(path) => load_file(path, namespace).map_err(|e| e.to_string())?,
        None => IdentityIndex::new(),
    };
    // Without an API server to ask, `auto` means native sidecars (Kubernetes ≥ 1.29).
    let native = podid_webhook::native_sidecars(inject.native_sidecars, None);
    let cfg = inject.to_config(native);
    let out = inject_documents(&input, &index, &cfg, namespace).map_err(|e| match e {
        InjectError::Denied { .. } => e.to_string(),
        other => format!("{}: {other}", file.display()),
    })?;
    for warning in &out.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", out.yaml);
    Ok(())
}
