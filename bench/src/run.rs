//! One benchmark run: certificates and inputs, each server in turn under each load, the table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use podid_certs::testca::TestCa;
use serde_json::Value;
use tokio_rustls::TlsConnector;

use crate::cpu;
use crate::handler;
use crate::load::{self, Target};
use crate::pod;
use crate::report::{self, Row, Setup};
use crate::servers::{Running, Server, ServerFiles};

/// How long a fresh server may take to answer its first request.
const STARTUP_PATIENCE: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Connections.
    pub concurrency: usize,
    /// Measured time per run.
    pub duration: Duration,
    /// Unrecorded time before each run.
    pub warmup: Duration,
    /// Open-loop requests per second.
    pub rate: u32,
    /// podid's identities file.
    pub identities: PathBuf,
    /// How long to wait for an idle machine before each run (zero: do not wait).
    pub patience: Duration,
    /// How many times a run disturbed by other processes is repeated.
    pub retries: u32,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Closed,
    Open,
}

impl Mode {
    /// Name in the table.
    fn label(self, rate: u32) -> String {
        match self {
            Self::Closed => "closed-loop".to_owned(),
            Self::Open => format!("{rate} req/s"),
        }
    }
}

/// Runs every server under every load and prints the table.
pub fn run(plan: &Plan) -> anyhow::Result<()> {
    let body = Bytes::from(pod::admission_review());
    let index = handler::load_index(&plan.identities)?;
    // The bare server sends exactly podid's answer, so both put the same bytes on the wire.
    let canned = handler::answer(&body, &index)?;
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new();
    let files = write_files(dir.path(), &ca, &canned, &plan.identities)?;
    eprintln!(
        "pod AdmissionReview {} bytes, podid's answer {} bytes",
        body.len(),
        canned.len()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tls = TlsConnector::from(Arc::new(ca.client_config()));
    let bench = Bench {
        rt,
        files,
        tls,
        body,
        canned,
        plan,
    };
    if !plan.patience.is_zero() {
        cpu::wait_quiet(plan.patience);
    }
    let handler_cost = handler::measure(&bench.body, &index, Duration::from_millis(500));
    let closed = [Server::Bare, Server::Podid].map(|s| bench.measure(s, Mode::Closed));
    let open = [Server::Bare, Server::Podid].map(|s| bench.measure(s, Mode::Open));
    let (closed, open) = (collect(closed)?, collect(open)?);
    let setup = Setup {
        pod_bytes: bench.body.len(),
        answer_bytes: bench.canned.len(),
        concurrency: plan.concurrency,
        duration: plan.duration,
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        rate: plan.rate,
        handler: handler_cost,
    };
    print!("{}", report::table(&setup, &closed, &open));
    Ok(())
}

/// The serving certificate (for the Service name the client dials), its key and the canned
/// answer, written where the server processes can read them.
pub(crate) fn write_files(
    dir: &Path,
    ca: &TestCa,
    canned: &[u8],
    identities: &Path,
) -> anyhow::Result<ServerFiles> {
    let (cert, key) = ca.leaf(&[load::SERVER_NAME]);
    let files = ServerFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        identities: identities.to_path_buf(),
        response: dir.join("answer.json"),
    };
    std::fs::write(&files.cert, cert)?;
    std::fs::write(&files.key, key)?;
    std::fs::write(&files.response, canned)?;
    Ok(files)
}

fn collect(rows: [anyhow::Result<Row>; 2]) -> anyhow::Result<Vec<Row>> {
    rows.into_iter().collect()
}

struct Bench<'a> {
    rt: tokio::runtime::Runtime,
    files: ServerFiles,
    tls: TlsConnector,
    body: Bytes,
    canned: Vec<u8>,
    plan: &'a Plan,
}

impl Bench<'_> {
    /// Measures `server` under `mode` once the machine is idle, again if other processes
    /// took CPU during the run (the machine may be shared), at most `retries` more times;
    /// keeps the least disturbed run.
    fn measure(&self, server: Server, mode: Mode) -> anyhow::Result<Row> {
        let plan = self.plan;
        let other = |row: &Row| row.other_cores.unwrap_or(0.0);
        let mut best: Option<Row> = None;
        for attempt in 0..=plan.retries {
            if attempt > 0 {
                eprintln!(
                    "{} {}: disturbed by other processes; again ({attempt}/{})",
                    server.name(),
                    mode.label(plan.rate),
                    plan.retries
                );
            }
            if !plan.patience.is_zero() && !cpu::wait_quiet(plan.patience) {
                eprintln!(
                    "the machine stayed busy for {:?}; measuring anyway",
                    plan.patience
                );
            }
            let row = self.measure_once(server, mode)?;
            let undisturbed = other(&row) <= report::DISTURBED_CORES;
            if best.as_ref().is_none_or(|b| other(&row) < other(b)) {
                best = Some(row);
            }
            if undisturbed {
                break;
            }
        }
        best.context("no run was made")
    }

    /// Starts a fresh `server` process, checks its first answer, loads it, stops it.
    fn measure_once(&self, server: Server, mode: Mode) -> anyhow::Result<Row> {
        let running = Running::start(server, &self.files)?;
        let target = Arc::new(Target {
            addr: running.addr,
            tls: self.tls.clone(),
            body: self.body.clone(),
        });
        let plan = self.plan;
        let (measured, cpu) = self.rt.block_on(async {
            let first = load::probe(&target, STARTUP_PATIENCE).await?;
            if server == Server::Podid {
                check_podid_answer(&first, &self.canned)?;
            }
            let (c, rate) = (plan.concurrency, plan.rate);
            let (warmup, duration) = (plan.warmup, plan.duration);
            let load = async {
                match mode {
                    Mode::Closed => load::closed_loop(target, c, warmup, duration).await,
                    Mode::Open => load::open_loop(target, c, rate, warmup, duration).await,
                }
            };
            let (measured, cpu) =
                tokio::join!(load, cpu::in_window(running.pid(), warmup, duration));
            anyhow::Ok((measured?, cpu))
        })?;
        drop(running);
        let label = mode.label(plan.rate);
        eprintln!(
            "{} {label}: {} requests, {} errors",
            server.name(),
            measured.latencies_ns.len(),
            measured.errors.len()
        );
        Ok(Row::new(server.name(), label, measured, cpu))
    }
}

/// The webhook's real answer must admit the pod with a JSON patch, and match the canned one.
fn check_podid_answer(answer: &[u8], canned: &[u8]) -> anyhow::Result<()> {
    let review: Value = serde_json::from_slice(answer).context("podid's answer is not JSON")?;
    let response = &review["response"];
    let patched = response["allowed"] == Value::Bool(true)
        && response["patchType"] == "JSONPatch"
        && response["patch"].as_str().is_some_and(|p| !p.is_empty());
    if !patched {
        bail!(
            "podid did not admit the pod with a patch: {}",
            String::from_utf8_lossy(answer)
        );
    }
    if answer != canned {
        eprintln!(
            "note: podid's answer ({} bytes) differs from the bare server's ({} bytes)",
            answer.len(),
            canned.len()
        );
    }
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
