//! The run: a burst of pods, an idle spell, churn; each measured on the stand-in's counters and printed as one table.

use std::time::{Duration, Instant};

use podid_azure_emulator::ArmCounters;
use podid_controller::arm::{ArmClient, ArmClientConfig, StaticToken, TrustRoots, roots_from_pem};
use podid_controller::exec::{ExecConfig, Executor, Submitter};
use podid_controller::metrics::Metrics;
use podid_controller::plan::{ChangeKind, Policy};
use podid_controller::seams::{Report, SystemClock};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::Scale;
use crate::world::{MemStore, World};

/// The default verification interval the idle cost is projected to.
const DEFAULT_VERIFY: Duration = Duration::from_secs(600);
/// Churn moves pods this often.
const CHURN_TICK: Duration = Duration::from_millis(500);

/// What the stand-in counted over one phase.
struct Counted {
    writes: u64,
    touched: usize,
    gets: u64,
    throttled: u64,
}

impl Counted {
    fn of(c: &ArmCounters) -> Self {
        Self {
            writes: c.patches.values().sum(),
            touched: c.patches.values().filter(|n| **n > 0).count(),
            gets: c.gets.values().sum(),
            throttled: c.throttled,
        }
    }

    fn per_target(&self) -> f64 {
        self.writes as f64 / self.touched.max(1) as f64
    }
}

/// Runs every phase and prints the table.
pub async fn run(scale: Scale) -> anyhow::Result<()> {
    let mut world = World::start(&scale).await;
    let metrics = Metrics::new();
    let client = ArmClient::new(client_config(&world, &scale)?, StaticToken::new("bench"))?
        .with_metrics(metrics.arm.clone());
    let policy = Policy::new(scale.grace).with_cluster_identity(&world.id_of("kubelet"));
    let verify = scale.idle / 4;
    let config = ExecConfig {
        coalesce_window: scale.window,
        verify_interval: verify,
        verify_per_minute: 100_000,
        metrics: metrics.exec.clone(),
        ..ExecConfig::default()
    };
    let (executor, mut reports) =
        Executor::new(client, MemStore::default(), SystemClock, policy, config);
    let submitter = executor.submitter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(executor.run(async move {
        let _ = stopped.await;
    }));

    let (burst, elapsed) = burst(&mut world, &submitter, &scale).await;
    world.e.reset_counters();
    tokio::time::sleep(scale.idle).await;
    let idle = Counted::of(&world.e.arm_counters());
    world.e.reset_counters();
    drain(&mut reports);
    let moves = churn(&mut world, &submitter, &scale).await?;
    let churned = Counted::of(&world.e.arm_counters());
    let (adds, removals) = changes(&mut reports);

    let _ = stop.send(());
    task.await?;
    let results = Results {
        burst,
        elapsed,
        idle,
        verify,
        moves,
        churned,
        adds,
        removals,
        foreign_removed: world.foreign_removed(),
    };
    print_table(&scale, &world, &results);
    Ok(())
}

/// Everything the table shows.
struct Results {
    burst: Counted,
    elapsed: Duration,
    idle: Counted,
    verify: Duration,
    moves: usize,
    churned: Counted,
    adds: usize,
    removals: usize,
    foreign_removed: usize,
}

fn print_table(scale: &Scale, world: &World, r: &Results) {
    let targets = world.targets.len();
    let idle_per_hour = r.idle.gets as f64 / targets as f64 * 3600.0 / scale.idle.as_secs_f64();
    let projected = idle_per_hour * r.verify.as_secs_f64() / DEFAULT_VERIFY.as_secs_f64();
    let (lat, window) = (scale.latency.as_secs_f64(), scale.window.as_secs_f64());
    let elapsed = r.elapsed.as_secs_f64();
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| world | {} pods, {} nodes, {targets} targets ({} scale sets, {} VMs), {} identities | |",
        scale.pods,
        world.nodes.len(),
        scale.scale_sets,
        scale.vms,
        scale.identities
    );
    println!("| PATCH latency (fixed) / coalescing window | {lat:.1} s / {window:.1} s | |");
    println!(
        "| burst: ARM writes ÷ targets touched | {} ÷ {} = {:.2} | 1.0 |",
        r.burst.writes,
        r.burst.touched,
        r.burst.per_target()
    );
    println!(
        "| burst: time to all assigned ÷ PATCH latency | {elapsed:.2} s ÷ {lat:.1} s = {:.2} | ≤ 1.2 + {:.2} (window) |",
        elapsed / lat,
        window / lat
    );
    println!("| burst: GETs | {} | |", r.burst.gets);
    println!(
        "| 429s received (burst, idle, churn) | {}, {}, {} | 0 |",
        r.burst.throttled, r.idle.throttled, r.churned.throttled
    );
    println!(
        "| idle: GETs per target per hour | {idle_per_hour:.0} (verify every {:.0} s) → {projected:.1} at the default {} s | low |",
        r.verify.as_secs_f64(),
        DEFAULT_VERIFY.as_secs()
    );
    println!(
        "| churn: {:.0} s, pods moved | {} | |",
        scale.churn.as_secs_f64(),
        r.moves
    );
    println!(
        "| churn: ARM writes (targets touched) | {} ({}) | |",
        r.churned.writes, r.churned.touched
    );
    println!(
        "| churn: identities added / removed | {} / {} | |",
        r.adds, r.removals
    );
    println!("| foreign identities removed | {} | 0 |", r.foreign_removed);
}

fn client_config(world: &World, scale: &Scale) -> anyhow::Result<ArmClientConfig> {
    Ok(ArmClientConfig {
        endpoint: world.e.arm_endpoint().unwrap_or_default(),
        roots: TrustRoots::Custom(roots_from_pem(world.ca.as_bytes())?),
        // The stand-in sends no Retry-After on operation polls.
        poll_interval: (scale.latency / 30).max(Duration::from_millis(20)),
        ..ArmClientConfig::default()
    })
}

/// What pod `i` wants: two of the identities, spread.
fn wants(i: usize, identities: usize) -> String {
    let (a, b) = (i % identities, (i * 7 + 3) % identities);
    format!("id-{a:02},id-{b:02}")
}

/// All pods at once (a desired state every 10 pods, as watch events would
/// bring them); the time from the first to every identity in place.
async fn burst(world: &mut World, submitter: &Submitter, scale: &Scale) -> (Counted, Duration) {
    let start = Instant::now();
    for i in 0..scale.pods {
        world.add_pod(i, &wants(i, scale.identities));
        if i % 10 == 9 {
            submitter.submit(world.desired());
        }
    }
    let desired = world.desired();
    submitter.submit(desired.clone());
    while !world.converged(&desired, false) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    (Counted::of(&world.e.arm_counters()), elapsed)
}

/// Pods deleted and recreated on other nodes, 2 % every tick; then waits
/// until the state is exact (removals after the grace period).
async fn churn(world: &mut World, submitter: &Submitter, scale: &Scale) -> anyhow::Result<usize> {
    let mut rng = fastrand::Rng::with_seed(scale.seed);
    let per_tick = (scale.pods / 50).max(1);
    let end = Instant::now() + scale.churn;
    let mut moves = 0;
    while Instant::now() < end {
        let names = world.pod_names();
        for _ in 0..per_tick {
            let victim = &names[rng.usize(..names.len())];
            if let Some((wants, node)) = world.delete_pod(victim) {
                let others: Vec<usize> = (0..world.nodes.len())
                    .filter(|n| world.nodes[*n] != node)
                    .collect();
                world.add_pod(others[rng.usize(..others.len())], &wants);
                moves += 1;
            }
        }
        submitter.submit(world.desired());
        tokio::time::sleep(CHURN_TICK).await;
    }
    let desired = world.desired();
    let deadline = Instant::now() + scale.grace * 4 + scale.latency * 4 + Duration::from_secs(30);
    while !world.converged(&desired, true) {
        anyhow::ensure!(Instant::now() < deadline, "churn did not settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(moves)
}

fn drain(reports: &mut UnboundedReceiver<Report>) -> Vec<Report> {
    let mut all = Vec::new();
    while let Ok(r) = reports.try_recv() {
        all.push(r);
    }
    all
}

/// Identities added and removed, from the executor's reports.
fn changes(reports: &mut UnboundedReceiver<Report>) -> (usize, usize) {
    let applied = drain(reports).into_iter().filter_map(|r| match r {
        Report::Applied { changes, .. } => Some(changes),
        _ => None,
    });
    let kinds: Vec<ChangeKind> = applied.flatten().map(|c| c.kind).collect();
    let adds = kinds.iter().filter(|k| **k == ChangeKind::Add).count();
    (adds, kinds.len() - adds)
}
