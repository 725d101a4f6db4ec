//! The executor against an in-memory ARM on tokio's paused clock: coalescing, independent targets, backoff, refusals, verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod exec_support;

use std::time::Duration;

use exec_support::fake_arm::{Call, On, pass, policy, world};
use exec_support::*;
use podid_controller::seams::{ArmError, Report};
use podid_core::azure_ids::canonical_id;

#[tokio::test(start_paused = true)]
async fn a_burst_of_pods_costs_one_patch_per_target() {
    let (arm, mut cluster, targets) = world();
    let exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    for i in 0..30 {
        let ids: &[&str] = if i % 2 == 0 { &["x", "y"] } else { &["z"] };
        cluster.pod(&format!("p{i}"), &format!("n-vm{}", i % 3), ids);
        exec.submit(&cluster);
        pass(Duration::from_millis(10)).await;
    }
    pass(Duration::from_secs(30)).await;
    for t in &targets {
        assert_eq!(arm.patches(t).len(), 1, "{t}: {:?}", arm.patches(t));
        assert_eq!(arm.carried(t).len(), 3, "{t}");
    }
    let reports = exec.stop().await;
    assert_eq!(reports.len(), 3, "{reports:?}");
}

#[tokio::test(start_paused = true)]
async fn changes_arriving_during_a_patch_join_the_next_one() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    arm.set_latency(vm0, Duration::from_secs(20));
    let exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    exec.submit(cluster.pod("a", "n-vm0", &["x"]));
    pass(Duration::from_secs(5)).await;
    for (pod, id) in [("b", "y"), ("c", "z"), ("d", "y")] {
        exec.submit(cluster.pod(pod, "n-vm0", &[id]));
        pass(Duration::from_secs(1)).await;
    }
    pass(Duration::from_secs(60)).await;
    let patches = arm.patches(vm0);
    assert_eq!(patches.len(), 2, "{patches:?}");
    let second: Vec<&str> = patches[1].iter().map(|c| c.canonical.as_str()).collect();
    assert_eq!(second, [canonical_id(&uid("y")), canonical_id(&uid("z"))]);
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_target_does_not_hold_up_the_others() {
    let (arm, mut cluster, targets) = world();
    arm.set_latency(&targets[0], Duration::from_secs(3600));
    arm.set_latency(&targets[1], Duration::from_secs(10));
    let mut exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    cluster
        .pod("a", "n-vm0", &["x"])
        .pod("b", "n-vm1", &["x"])
        .pod("c", "n-vm2", &["x"]);
    exec.submit(&cluster);
    pass(Duration::from_secs(60)).await;
    assert!(!arm.carries(&targets[0], &uid("x")));
    assert!(arm.carries(&targets[1], &uid("x")));
    assert!(arm.carries(&targets[2], &uid("x")));
    let reports = exec.drain();
    assert_eq!(applied(&reports, &targets[1]).len(), 1);
    assert_eq!(applied(&reports, &targets[2]).len(), 1);
    assert!(applied(&reports, &targets[0]).is_empty());
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_throttled_target_waits_for_retry_after_and_the_others_proceed() {
    let (arm, mut cluster, targets) = world();
    let retry_after = Duration::from_secs(30);
    arm.fail_next(On::Patch, &targets[0], ArmError::Throttled { retry_after });
    let mut exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    exec.submit(cluster.pod("a", "n-vm0", &["x"]).pod("b", "n-vm1", &["x"]));
    pass(Duration::from_secs(5)).await;
    assert!(
        arm.carries(&targets[1], &uid("x")),
        "the other target is not held up"
    );
    pass(Duration::from_secs(60)).await;
    assert!(arm.carries(&targets[0], &uid("x")));
    let times: Vec<_> = (arm.calls().into_iter())
        .filter(|(_, c)| matches!(c, Call::Patch(t, _) if *t == targets[0]))
        .map(|(at, _)| at)
        .collect();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= retry_after,
        "{:?}",
        times[1] - times[0]
    );
    let reports = exec.drain();
    assert!(
        reports
            .iter()
            .any(|r| matches!(r, Report::TargetFailed { target, .. } if *target == targets[0]))
    );
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_backs_off_and_reads_the_target_again() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    arm.fail_next(On::Patch, vm0, ArmError::Transient("503".into()));
    arm.fail_next(On::Get, vm0, ArmError::Transient("timeout".into()));
    let exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    exec.submit(cluster.pod("a", "n-vm0", &["x"]));
    pass(Duration::from_secs(60)).await;
    assert!(arm.carries(vm0, &uid("x")));
    let calls: Vec<Call> = arm.calls().into_iter().map(|(_, c)| c).collect();
    let kinds: Vec<&str> = (calls.iter())
        .map(|c| match c {
            Call::Get(_) => "get",
            Call::Patch(..) => "patch",
        })
        .collect();
    // read fails, read, PATCH fails, read again, PATCH
    assert_eq!(kinds, ["get", "get", "patch", "get", "patch"]);
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_identity_is_reported_and_the_rest_are_assigned() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    arm.refuse(&uid("y"));
    let mut exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    exec.submit(cluster.pod("a", "n-vm0", &["x", "y", "z"]));
    pass(Duration::from_secs(60)).await;
    assert!(arm.carries(vm0, &uid("x")) && arm.carries(vm0, &uid("z")));
    assert!(!arm.carries(vm0, &uid("y")));
    let reports = exec.drain();
    let failed: Vec<_> = (reports.iter())
        .filter_map(|r| match r {
            Report::IdentityFailed { identities, .. } => Some(identities.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![vec![canonical_id(&uid("y"))]]);
    assert_eq!(
        arm.patches(vm0).len(),
        2,
        "refused once, then the rest; y held back"
    );
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn verification_adds_back_what_drifted_away_and_idle_targets_cost_few_reads() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    let config = quick_config();
    let interval = config.verify_interval;
    let exec = start(arm.clone(), MemoryStore::default(), policy(), config);
    exec.submit(cluster.pod("a", "n-vm0", &["x"]).pod("b", "n-vm1", &["y"]));
    pass(Duration::from_secs(10)).await;
    arm.meddle(vm0, |b| {
        *b = podid_controller::plan::AssignedIdentities::default()
    });
    pass(interval + Duration::from_secs(10)).await;
    assert!(
        arm.carries(vm0, &uid("x")),
        "re-added after the periodic read"
    );
    let before = arm.gets(&targets[1]);
    pass(Duration::from_secs(3600)).await;
    let per_hour = arm.gets(&targets[1]) - before;
    let most = (3600 / interval.as_secs()) as usize * 4 / 3 + 1;
    assert!(per_hour <= most, "{per_hour} reads an idle hour");
    assert!(per_hour >= 1);
    assert_eq!(
        arm.gets(&targets[2]),
        0,
        "a target nobody needs is never read"
    );
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sustained_churn_is_paced_by_the_write_budget_and_still_converges() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    arm.set_latency(vm0, Duration::from_secs(1));
    let exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    let minutes = 5;
    for i in 0..minutes * 60 {
        // A new identity every second: the target's needs never stop changing.
        let id = format!("i{i}");
        cluster.identity(&id, &uid(&id));
        exec.submit(cluster.pod(&format!("p{i}"), "n-vm0", &[&id]));
        pass(Duration::from_secs(1)).await;
    }
    pass(Duration::from_secs(60)).await;
    let budget = podid_controller::exec::WriteBudget::default();
    let allowed = budget.burst as usize + budget.per_minute as usize * (minutes + 1);
    let writes = arm.patches(vm0).len();
    assert!(
        writes <= allowed,
        "{writes} writes, the budget allows {allowed}"
    );
    assert!(
        writes >= allowed / 2,
        "{writes} writes: the test did not churn"
    );
    assert_eq!(arm.carried(vm0).len(), minutes * 60);
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn targets_beyond_the_concurrency_cap_wait_their_turn() {
    let (arm, mut cluster, targets) = world();
    for t in &targets {
        arm.set_latency(t, Duration::from_secs(10));
    }
    let config = podid_controller::exec::ExecConfig {
        max_concurrent_targets: 1,
        ..quick_config()
    };
    let exec = start(arm.clone(), MemoryStore::default(), policy(), config);
    exec.submit(
        cluster
            .pod("a", "n-vm0", &["x"])
            .pod("b", "n-vm1", &["x"])
            .pod("c", "n-vm2", &["x"]),
    );
    pass(Duration::from_secs(15)).await;
    let done = targets.iter().filter(|t| arm.carries(t, &uid("x"))).count();
    assert_eq!(done, 1, "one at a time");
    pass(Duration::from_secs(60)).await;
    assert!(targets.iter().all(|t| arm.carries(t, &uid("x"))));
    exec.stop().await;
}
