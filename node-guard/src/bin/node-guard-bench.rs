//! `node-guard-bench [--quick]`: how long a pod change takes to reach the kernel's set, for 110 pods on a node and churn of 10 pods/s, against raw `nft` baselines (root; runs in its own network namespace).
//!
//! Latency is measured from the moment the new pod list is handed to the
//! guard's syncer (what the pod watch or the pods file does) until `nft list
//! set` shows the change in the kernel. Baselines, measured in the same run:
//! one bare `nft -f -` adding one element (the floor of any nft-based guard),
//! and rewriting the whole rule set on every change (the naive design).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use podid_core::guard::nft::{self, RuleConfig};
use podid_core::guard::{GuardPod, GuardPolicy};
use podid_node_guard::metrics::Metrics;
use podid_node_guard::nft::{Netfilter as _, NftCommand};
use podid_node_guard::sync::{SharedSet, Syncer};
use serde_json::{Value, json};

const TABLE: &str = "podid_guard_bench";
const PODS_PER_NODE: usize = 110;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--inside") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        return match runtime
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(inside(quick)))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("node-guard-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match outside(quick) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("node-guard-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Creates a network namespace, runs this program inside it, deletes it.
fn outside(quick: bool) -> Result<ExitCode, String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        eprintln!(
            "node-guard-bench: needs root (it creates a network namespace and nftables rules)"
        );
        return Ok(ExitCode::from(2));
    }
    let ns = format!("podid-bench-guard-{}", std::process::id());
    let run = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .map_err(|e| e.to_string())
    };
    if !run(&["netns", "add", &ns])?.success() {
        return Err(format!("ip netns add {ns} failed"));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns]).arg(exe).arg("--inside");
    if quick {
        cmd.arg("--quick");
    }
    let result = cmd.status().map_err(|e| e.to_string());
    let _ = run(&["netns", "delete", &ns]);
    Ok(if result?.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn ip(n: usize) -> Ipv4Addr {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + 10 + n)
}

/// An injected pod with a running proxy, as the API server reports it.
fn injected(n: usize) -> Value {
    let status = json!({"version": 1, "layout": "native", "initContainers": ["podid-init", "podid-proxy"],
                        "containers": [], "volumes": [], "identities": []});
    json!({
        "metadata": {"name": format!("pod-{n}"), "namespace": "apps", "uid": format!("uid-{n}"),
                     "labels": {"podid.io/injected": "true"}, "annotations": {"podid.io/status": status.to_string()}},
        "spec": {"initContainers": [{"name": "podid-init"}, {"name": "podid-proxy", "restartPolicy": "Always"}],
                 "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "podIP": ip(n).to_string(),
                   "initContainerStatuses": [{"name": "podid-proxy", "state": {"running": {}}}]}
    })
}

fn pods(ids: &[usize]) -> Result<Vec<GuardPod>, String> {
    let policy = GuardPolicy::default();
    ids.iter()
        .map(|n| GuardPod::from_json(&injected(*n), *n, &policy).map_err(|e| e.to_string()))
        .collect()
}

/// The kernel's set, as `nft -j list set` prints it.
fn kernel_set() -> Result<BTreeSet<Ipv4Addr>, String> {
    let out = Command::new("nft")
        .args(["-j", "list", "set", "ip", TABLE, nft::SET])
        .output()
        .map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("nft -j: {e}"))?;
    let elems = json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["set"]["elem"].as_array())
        .flatten();
    Ok(elems.filter_map(|e| e.as_str()?.parse().ok()).collect())
}

/// Polls the kernel until `done` holds (bounded: 5 s).
fn wait_kernel(
    started: Instant,
    done: impl Fn(&BTreeSet<Ipv4Addr>) -> bool,
) -> Result<Duration, String> {
    while started.elapsed() < Duration::from_secs(5) {
        if done(&kernel_set()?) {
            return Ok(started.elapsed());
        }
    }
    Err("the kernel's set did not change within 5 s".into())
}

struct Row {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Row {
    fn p(&self, q: f64) -> f64 {
        let mut s: Vec<f64> = self
            .samples
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        s.sort_by(f64::total_cmp);
        let i = ((s.len() as f64 - 1.0) * q).round() as usize;
        s.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// The syncer under test and the raw `nft` it is compared with, on one table.
struct Bench {
    syncer: Syncer<NftCommand>,
    nft: NftCommand,
    rules: RuleConfig,
    /// The pods on the node now.
    ids: Vec<usize>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Bench {
    async fn sync(&mut self) -> Result<(), String> {
        let list = pods(&self.ids)?;
        self.syncer.sync(&list, false).await.map_err(err)
    }

    /// 110 pods appear at once (the guard's first, full sync).
    async fn start(&mut self) -> Result<Row, String> {
        self.ids = (0..PODS_PER_NODE).collect();
        let list = pods(&self.ids)?;
        let started = Instant::now();
        self.syncer.sync(&list, false).await.map_err(err)?;
        let first = wait_kernel(started, |s| s.len() == PODS_PER_NODE)?;
        Ok(Row {
            name: "guard: start, 110 pods (full sync)",
            samples: vec![first],
        })
    }

    /// One bare `nft -f -` adding one element to the same 110-element set (then undone).
    async fn bare(&mut self, n: usize) -> Result<Row, String> {
        let mut samples = Vec::new();
        for i in 0..n {
            let change = nft::SetDelta {
                add: [ip(5000 + i)].into(),
                remove: BTreeSet::new(),
            };
            let started = Instant::now();
            self.nft
                .apply(&nft::delta(&self.rules, &change))
                .await
                .map_err(err)?;
            samples.push(wait_kernel(started, |s| s.contains(&ip(5000 + i)))?);
            let undo = nft::SetDelta {
                add: BTreeSet::new(),
                remove: change.add,
            };
            self.nft
                .apply(&nft::delta(&self.rules, &undo))
                .await
                .map_err(err)?;
        }
        Ok(Row {
            name: "baseline: bare nft add of 1 element",
            samples,
        })
    }

    /// The naive design: the whole rule set rewritten for one more pod.
    async fn naive(&mut self, n: usize) -> Result<Row, String> {
        let mut samples = Vec::new();
        for i in 0..n {
            let mut allowed: BTreeSet<Ipv4Addr> = self.ids.iter().map(|n| ip(*n)).collect();
            allowed.insert(ip(9000 + i));
            let started = Instant::now();
            self.nft
                .apply(&nft::full_sync(&self.rules, &allowed))
                .await
                .map_err(err)?;
            samples.push(wait_kernel(started, |s| s.contains(&ip(9000 + i)))?);
        }
        // Back to what the syncer believes the kernel holds.
        let list = pods(&self.ids)?;
        self.syncer.sync(&list, true).await.map_err(err)?;
        Ok(Row {
            name: "baseline: full rewrite per change (110 pods)",
            samples,
        })
    }

    /// One pod appears on a node of 110 (then goes again), `n` times.
    async fn single(&mut self, n: usize) -> Result<Row, String> {
        let mut samples = Vec::new();
        for i in 0..n {
            let new = 1000 + i;
            self.ids.push(new);
            let list = pods(&self.ids)?;
            let started = Instant::now();
            self.syncer.sync(&list, false).await.map_err(err)?;
            samples.push(wait_kernel(started, |s| s.contains(&ip(new)))?);
            self.ids.retain(|n| *n != new);
            self.sync().await?;
        }
        Ok(Row {
            name: "guard: 1 pod appears (110 on the node)",
            samples,
        })
    }

    /// Every 100 ms one pod goes and a new one comes (10 pods/s), for `secs`; also counts changes slower than their slot.
    async fn churn(&mut self, secs: usize) -> Result<(Row, usize), String> {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut behind = 0;
        for i in 0..secs * 10 {
            tick.tick().await;
            let (gone, new) = (self.ids.remove(0), 2000 + i);
            self.ids.push(new);
            let list = pods(&self.ids)?;
            let started = Instant::now();
            self.syncer.sync(&list, false).await.map_err(err)?;
            let took = wait_kernel(started, |s| s.contains(&ip(new)) && !s.contains(&ip(gone)))?;
            behind += usize::from(took > Duration::from_millis(100));
            samples.push(took);
        }
        Ok((
            Row {
                name: "guard: churn 10 pods/s (1 out + 1 in each)",
                samples,
            },
            behind,
        ))
    }
}

fn print(rows: &[Row], behind: usize, churned: usize) {
    let floor = rows
        .iter()
        .find(|r| r.name.starts_with("baseline: bare"))
        .map_or(f64::NAN, |r| r.p(0.5));
    println!(
        "node guard update latency: pod list handed to the guard -> change visible in `nft list set`"
    );
    println!(
        "{:<46} {:>5} {:>8} {:>8} {:>8} {:>10}",
        "scenario", "n", "p50 ms", "p99 ms", "max ms", "p50/bare"
    );
    for row in rows {
        let (p50, p99, max) = (row.p(0.5), row.p(0.99), row.p(1.0));
        println!(
            "{:<46} {:>5} {p50:>8.2} {p99:>8.2} {max:>8.2} {:>9.2}x",
            row.name,
            row.samples.len(),
            p50 / floor
        );
    }
    println!("churn changes slower than their 100 ms slot: {behind} of {churned}");
}

async fn inside(quick: bool) -> Result<(), String> {
    let rules = RuleConfig {
        table: TABLE.into(),
        imds: "169.254.169.254:80".parse().map_err(err)?,
        responder_ip: None,
        responder_port: 15393,
    };
    let nft = NftCommand::new("nft");
    let synced = Arc::new(AtomicBool::new(false));
    let syncer = Syncer::new(
        nft.clone(),
        rules.clone(),
        Metrics::new().0,
        SharedSet::default(),
        synced,
    );
    let mut bench = Bench {
        syncer,
        nft,
        rules,
        ids: Vec::new(),
    };
    let (n, secs) = if quick { (10, 2) } else { (50, 10) };
    let result = async {
        let start = bench.start().await?;
        let bare = bench.bare(n).await?;
        let naive = bench.naive(n).await?;
        let single = bench.single(n).await?;
        let (churn, behind) = bench.churn(secs).await?;
        Ok::<_, String>((vec![bare, start, naive, single, churn], behind))
    }
    .await;
    let _ = bench.nft.apply(&nft::remove(TABLE)).await;
    let (rows, behind) = result?;
    print(&rows, behind, secs * 10);
    Ok(())
}
