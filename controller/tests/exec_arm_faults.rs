//! The fault matrix: the real executor and ARM client against the ARM stand-in over HTTPS, each fault ending in the desired state with no foreign identity removed and no assignment lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod exec_support;

use std::time::Duration;

use exec_support::emulated::*;
use exec_support::*;
use podid_azure_emulator::{
    ArmConfig, ArmFault, ArmLimits, ArmMatch, Fault, PatchAnswer, Rate, UnknownIdentityAnswer,
};
use podid_controller::exec::ExecConfig;
use podid_controller::plan::Policy;
use podid_controller::seams::Report;

/// Long enough for any row to settle; rows usually take well under a second.
const SETTLE: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(1);

/// vm0 wants x and y; ss0 (two nodes) wants x, y and z.
fn pods(s: &mut Stand) {
    s.cluster
        .pod("a", "n-vm0", &["x", "y"])
        .pod("b", "n-ss0-0", &["y", "z"])
        .pod("c", "n-ss0-1", &["x"]);
}

async fn reaches(s: &Stand, vm0: &[&str], ss0: &[&str]) {
    eventually(SETTLE, "the desired state", || {
        s.carries_exactly(s.vm0(), vm0) && s.carries_exactly(s.ss0(), ss0)
    })
    .await;
}

/// Runs the standard scenario with `faults` injected first, and checks the end state.
async fn survives(config: ArmConfig, faults: impl FnOnce(&Stand)) -> (Stand, Vec<Report>) {
    let mut s = stand(config).await;
    pods(&mut s);
    faults(&s);
    let exec = s.executor(&MemoryStore::default(), Policy::new(GRACE), fast_exec());
    exec.submit(&s.cluster);
    reaches(&s, &["x", "y"], &["x", "y", "z"]).await;
    let reports = exec.stop().await;
    (s, reports)
}

fn target_failed(reports: &[Report]) -> bool {
    reports
        .iter()
        .any(|r| matches!(r, Report::TargetFailed { .. }))
}

#[tokio::test]
async fn throttled_patches_are_retried_after_retry_after() {
    let (s, reports) = survives(quick_arm(), |s| {
        let which = ArmMatch::patch(s.ss0().clone());
        let fault = ArmFault::Answer(Fault::status(429).retry_after(1));
        s.e.inject_arm_faults(which, fault, 2);
    })
    .await;
    assert_eq!(
        s.e.arm_patches(s.ss0()),
        3,
        "two throttled, then one that passed"
    );
    assert!(target_failed(&reports));
}

#[tokio::test]
async fn a_write_bucket_that_runs_dry_is_waited_out() {
    let config = ArmConfig {
        limits: ArmLimits {
            resource_write: Some(Rate::per_minute(60.0, 1.0)),
            ..ArmLimits::unlimited()
        },
        ..quick_arm()
    };
    let mut s = stand(config).await;
    let exec = s.executor(&MemoryStore::default(), Policy::new(GRACE), fast_exec());
    let mut wanted = Vec::new();
    for (pod, id) in [("a", "x"), ("b", "y"), ("c", "z")] {
        wanted.push(id);
        exec.submit(s.cluster.pod(pod, "n-vm0", &[id]));
        eventually(SETTLE, "assigned", || s.carries_exactly(s.vm0(), &wanted)).await;
    }
    let throttled = s.e.arm_throttled();
    assert!(
        throttled <= 2,
        "one 429 per dry bucket at most, got {throttled}"
    );
    exec.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried() {
    let (s, reports) = survives(quick_arm(), |s| {
        let e = &s.e;
        e.inject_arm_faults(
            ArmMatch::patch(s.ss0().clone()),
            ArmFault::Answer(Fault::status(503)),
            2,
        );
        e.inject_arm_faults(
            ArmMatch::get(s.vm0().clone()),
            ArmFault::Answer(Fault::status(500)),
            1,
        );
    })
    .await;
    assert!(target_failed(&reports));
    assert!(s.e.arm_patches(s.ss0()) >= 3);
}

#[tokio::test]
async fn conflicts_are_retried() {
    let (_, reports) = survives(quick_arm(), |s| {
        let fault = ArmFault::Answer(Fault::status(409));
        s.e.inject_arm_faults(ArmMatch::patch(s.vm0().clone()), fault, 2);
    })
    .await;
    assert!(target_failed(&reports));
}

#[tokio::test]
async fn requests_that_hang_time_out_and_are_retried() {
    survives(quick_arm(), |s| {
        let hang = ArmFault::Hang(Duration::from_secs(5));
        s.e.inject_arm_faults(ArmMatch::patch(s.vm0().clone()), hang, 1);
        s.e.inject_arm_faults(ArmMatch::get(s.ss0().clone()), hang, 1);
    })
    .await;
}

#[tokio::test]
async fn failed_operations_are_retried() {
    let (s, _) = survives(quick_arm(), |s| {
        s.e.fail_arm_operations(Some(s.ss0().clone()), 2);
    })
    .await;
    assert_eq!(s.e.arm_counters().operations_failed, 2);
}

#[tokio::test]
async fn operations_answered_202_are_followed_to_their_end() {
    let config = ArmConfig {
        patch_answer: PatchAnswer::Accepted202,
        ..quick_arm()
    };
    survives(config, |_| {}).await;
}

/// Runs the scenario with identity `bad` refused by ARM; the rest must be assigned.
async fn one_bad_identity(config: ArmConfig, spoil: impl FnOnce(&Stand)) {
    let mut s = stand(config).await;
    pods(&mut s);
    let y: Vec<String> = s.ids(&["y"]).into_iter().collect();
    spoil(&s);
    let exec = s.executor(&MemoryStore::default(), Policy::new(GRACE), fast_exec());
    exec.submit(&s.cluster);
    reaches(&s, &["x"], &["x", "z"]).await;
    let reports = exec.stop().await;
    let refused: Vec<_> = (reports.iter())
        .filter_map(|r| match r {
            Report::IdentityFailed {
                target, identities, ..
            } if *identities == y => Some(target),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 2, "reported once per target: {reports:?}");
}

#[tokio::test]
async fn an_identity_the_caller_may_not_assign_does_not_stop_the_rest() {
    one_bad_identity(quick_arm(), |s| {
        s.e.set_caller_can_assign("y", false).unwrap()
    })
    .await;
}

#[tokio::test]
async fn a_deleted_identity_does_not_stop_the_rest() {
    one_bad_identity(quick_arm(), |s| drop(s.e.delete_identity("y").unwrap())).await;
    let config = ArmConfig {
        unknown_identity: UnknownIdentityAnswer::NotFound404,
        ..quick_arm()
    };
    one_bad_identity(config, |s| drop(s.e.delete_identity("y").unwrap())).await;
}

/// Stops a first executor while ss0's operation runs; a second carries on
/// (`wait_for_operation`: a restart; otherwise a leader change). It must
/// reach the state, and later remove what the first one added.
async fn handover(wait_for_operation: bool) {
    let config = ArmConfig {
        scale_set_latency: Duration::from_millis(1500),
        ..quick_arm()
    };
    let mut s = stand(config).await;
    pods(&mut s);
    let store = MemoryStore::default();
    let first = s.executor(&store, Policy::new(GRACE), fast_exec());
    first.submit(&s.cluster);
    eventually(SETTLE, "ss0's operation running", || {
        s.e.arm_in_flight() > 0
    })
    .await;
    first.stop().await;
    if wait_for_operation {
        eventually(SETTLE, "the operation ended", || s.e.arm_in_flight() == 0).await;
    }
    let second = s.executor(&store, Policy::new(GRACE), fast_exec());
    second.submit(&s.cluster);
    reaches(&s, &["x", "y"], &["x", "y", "z"]).await;
    second.submit(s.cluster.delete_all());
    reaches(&s, &[], &[]).await;
    assert_eq!(s.e.arm_counters().operations_failed, 0);
    second.stop().await;
}

#[tokio::test]
async fn a_restart_mid_operation_neither_forgets_nor_invents() {
    handover(true).await;
}

#[tokio::test]
async fn a_leader_change_mid_operation_converges() {
    handover(false).await;
}

#[tokio::test]
async fn identities_wiped_from_a_scale_set_are_added_back() {
    let mut s = stand(quick_arm()).await;
    pods(&mut s);
    let config = ExecConfig {
        verify_interval: Duration::from_secs(1),
        ..fast_exec()
    };
    let exec = s.executor(&MemoryStore::default(), Policy::new(GRACE), config);
    exec.submit(&s.cluster);
    reaches(&s, &["x", "y"], &["x", "y", "z"]).await;
    for id in ["x", "y", "z"] {
        s.e.unassign(s.ss0(), id).unwrap();
    }
    reaches(&s, &["x", "y"], &["x", "y", "z"]).await;
    exec.stop().await;
}

#[tokio::test]
async fn more_than_150_changes_go_out_in_several_requests() {
    let mut s = stand(quick_arm()).await;
    let names: Vec<String> = (0..160).map(|i| format!("bulk-{i:03}")).collect();
    for name in &names {
        let id = s.e.write(|st| st.add_identity(name)).resource_id;
        s.cluster.identity(name, &id);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    s.cluster.pod("a", "n-vm0", &refs);
    let exec = s.executor(&MemoryStore::default(), Policy::new(GRACE), fast_exec());
    exec.submit(&s.cluster);
    reaches(&s, &refs, &[]).await;
    assert_eq!(s.e.arm_patches(s.vm0()), 2);
    exec.stop().await;
}
