//! `podid-demo` (`make demo`): podid's whole flow on one machine, no cluster and no Azure.
//!
//! The real programs run as child processes: the Azure stand-in (IMDS of one
//! VM, Entra ID, ARM), `podid-webhook` admitting AdmissionReviews over TLS as
//! the API server sends them, `podid-controller` assigning the pod's identity
//! to the VM from a `--cluster-file`, and, as root, a pod network namespace
//! (the e2e harness's) where `podid-init` and `podid-proxy` run exactly as the
//! webhook's patch renders them and an unmodified Azure SDK client gets a
//! token for its own identity and a 403 for another. Each step prints one
//! line with its duration. Everything started is removed at the end, on
//! failure, and on Ctrl-C or SIGTERM ([`cleanup`]).

pub mod cleanup;
pub mod cluster;
pub mod context;
pub mod pod;
pub mod report;
pub mod tls;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use podid_e2e::bins::Bins;
use podid_e2e::netns::{IMDS_IP, Topology};
use podid_e2e::pod::PodEnv;
use podid_e2e::proc::is_root;

use crate::context::{Ctx, free_port, program};
use crate::report::Report;

/// Flags of `podid-demo`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "podid-demo",
    version,
    about = "podid's whole flow on one machine"
)]
pub struct Args {
    /// Run only the steps that need no root, even as root (what a non-root run does).
    #[arg(long, env = "PODID_DEMO_WITHOUT_ROOT")]
    pub without_root: bool,
    /// Directory of the programs (default: this program's own, `target/<profile>`).
    #[arg(long, env = "PODID_DEMO_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// Runs the demo on this thread, then prints the closing line; the exit code says whether every step that ran passed.
pub fn run(args: &Args) -> ExitCode {
    let mut report = Report::default();
    let outcome = flow(args, &mut report);
    // Everything the flow started was dropped (stopped, deleted) when it returned.
    match outcome {
        Ok(()) => {
            report.finish();
            ExitCode::SUCCESS
        }
        Err(e) => {
            report.note(&format!(
                "demo        FAILED   {e}; everything it started is stopped and removed"
            ));
            ExitCode::FAILURE
        }
    }
}

/// Why the root steps cannot run here, if they cannot.
fn root_steps_blocked(args: &Args) -> Option<String> {
    if args.without_root {
        return Some("--without-root".into());
    }
    if !is_root() {
        return Some("needs root (network namespaces, iptables): run `sudo make demo`".into());
    }
    let missing: Vec<&str> = [
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("setpriv", "util-linux"),
    ]
    .into_iter()
    .filter(|(tool, _)| !on_path(tool))
    .map(|(_, package)| package)
    .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "needs {} (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        )
    })
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

fn bin_dir(args: &Args) -> Result<PathBuf, String> {
    match &args.bin_dir {
        Some(dir) => Ok(dir.clone()),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| "cannot locate the programs".into()),
    }
}

fn flow(args: &Args, report: &mut Report) -> Result<(), String> {
    let blocked = root_steps_blocked(args);
    let out = bin_dir(args)?;
    let bins: &'static Bins = Box::leak(Box::new(Bins::in_dir(&out, &out.join("podid-e2e-http"))?));
    let dir = tempfile::Builder::new()
        .prefix("podid-demo-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    cleanup::register_dir(dir.path().to_path_buf());
    // The node: its own namespace as root (IMDS on 169.254.169.254:80, and
    // this thread moves in so it reaches the stand-in, the webhook and the
    // controller on the node's loopback); the host's loopback otherwise.
    let topo = match blocked {
        Some(_) => None,
        None => {
            let topo = Topology::new("demo")?;
            cleanup::register_netns(topo.pod.name());
            cleanup::register_netns(topo.node.name());
            enter(topo.node.name())?;
            Some(topo)
        }
    };
    let imds = match topo {
        Some(_) => format!("{IMDS_IP}:80")
            .parse()
            .map_err(|e| format!("{e}"))?,
        None => free_port()?,
    };
    let ctx = Ctx {
        dir: dir.path().to_path_buf(),
        bins,
        webhook: program(&out, "podid-webhook")?,
        controller: program(&out, "podid-controller")?,
        imds,
        aad: free_port()?,
        arm: free_port()?,
        material: tls::material()?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(steps(&ctx, report, topo, blocked))
}

/// Moves this thread into network namespace `name` (`ip netns` names it under /run/netns).
fn enter(name: &str) -> Result<(), String> {
    let file = std::fs::File::open(Path::new("/run/netns").join(name))
        .map_err(|e| format!("opening network namespace {name}: {e}"))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("entering network namespace {name}: {e}"))
}

async fn steps(
    ctx: &Ctx,
    report: &mut Report,
    topo: Option<Topology>,
    blocked: Option<String>,
) -> Result<(), String> {
    let emulator = report.step("stand-in", cluster::stand_in(ctx)).await?;
    let (_webhook, addr) = report.step("webhook", cluster::webhook(ctx)).await?;
    let admitted = report.step("admit", cluster::admit_pod(ctx, addr)).await?;
    report
        .step("deny", cluster::deny_foreign(ctx, addr))
        .await?;
    let _controller = report
        .step("controller", cluster::controller(ctx, &admitted))
        .await?;
    let (Some(topo), None) = (topo, &blocked) else {
        let why = blocked.unwrap_or_default();
        for name in ["pod-init", "pod-proxy", "sdk-own", "sdk-foreign"] {
            report.skip(name, &why);
        }
        drop(emulator);
        return Ok(());
    };
    let injected = serde_json::to_string(&admitted).map_err(|e| e.to_string())?;
    let pod_dir = tempfile::Builder::new()
        .prefix("pod-")
        .tempdir_in(&ctx.dir)
        .map_err(|e| e.to_string())?;
    let mut env = PodEnv::from_parts(topo, ctx.bins, &injected, emulator, pod_dir)?;
    report.step("pod-init", pod::init(&env)).await?;
    report.step("pod-proxy", pod::proxy(&mut env)).await?;
    report.step("sdk-own", pod::own_token(&env)).await?;
    report.step("sdk-foreign", pod::foreign_token(&env)).await?;
    Ok(())
}
