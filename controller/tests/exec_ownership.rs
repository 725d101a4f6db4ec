//! The executor against an in-memory ARM on tokio's paused clock: what it added is recorded before it is reported, survives restarts, and is all it ever removes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod exec_support;

use std::time::Duration;

use exec_support::fake_arm::{GRACE, pass, policy, world};
use exec_support::*;
use podid_controller::exec::ExecConfig;
use podid_controller::seams::Report;
use podid_core::azure_ids::canonical_id;

#[tokio::test(start_paused = true)]
async fn only_what_it_added_is_removed_and_only_after_the_grace_period() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    arm.add_target(vm0, true, &[&uid("foreign")]);
    let mut exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    exec.submit(cluster.pod("a", "n-vm0", &["x"]));
    pass(Duration::from_secs(10)).await;
    assert!(arm.carries(vm0, &uid("x")));
    exec.submit(cluster.delete("a"));
    pass(GRACE / 2).await;
    assert!(arm.carries(vm0, &uid("x")), "still inside the grace period");
    pass(GRACE).await;
    assert!(
        !arm.carries(vm0, &uid("x")),
        "removed once due, with no new event"
    );
    assert!(
        arm.carries(vm0, &uid("foreign")),
        "a foreign identity is never removed"
    );
    let removed: Vec<_> = applied(&exec.drain(), vm0)
        .into_iter()
        .filter(|(_, add)| !add)
        .collect();
    assert_eq!(removed, vec![(canonical_id(&uid("x")), false)]);
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_executor_remembers_what_it_added() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    arm.add_target(vm0, false, &[&uid("foreign")]);
    let store = MemoryStore::default();
    let first = start(arm.clone(), store.clone(), policy(), quick_config());
    first.submit(cluster.pod("a", "n-vm0", &["x"]));
    pass(Duration::from_secs(10)).await;
    first.stop().await;
    assert!(store.records(vm0).contains_key(&canonical_id(&uid("x"))));
    let second = start(arm.clone(), store.clone(), policy(), quick_config());
    second.submit(cluster.delete("a"));
    pass(GRACE * 2).await;
    assert!(
        !arm.carries(vm0, &uid("x")),
        "the restarted executor removed what the first added"
    );
    assert!(arm.carries(vm0, &uid("foreign")));
    assert!(store.records(vm0).is_empty());
    second.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_add_in_flight_when_the_executor_stops_is_not_forgotten() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    arm.set_latency(vm0, Duration::from_secs(30));
    let store = MemoryStore::default();
    let first = start(arm.clone(), store.clone(), policy(), quick_config());
    first.submit(cluster.pod("a", "n-vm0", &["x"]));
    pass(Duration::from_secs(5)).await;
    assert_eq!(arm.patches(vm0).len(), 1, "the PATCH is in flight");
    first.stop().await;
    pass(Duration::from_secs(60)).await;
    assert!(
        arm.carries(vm0, &uid("x")),
        "the operation finished without us"
    );
    let second = start(arm.clone(), store.clone(), policy(), quick_config());
    second.submit(cluster.delete("a"));
    pass(GRACE * 2).await;
    assert!(
        !arm.carries(vm0, &uid("x")),
        "claimed before sending, so removed later"
    );
    second.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_removal_is_reported_only_once_its_record_is_saved() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    let store = MemoryStore::default();
    let config = ExecConfig {
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(60),
        ..quick_config()
    };
    let mut exec = start(arm.clone(), store.clone(), policy(), config);
    exec.submit(cluster.pod("a", "n-vm0", &["x"]));
    pass(Duration::from_secs(10)).await;
    exec.submit(cluster.delete("a"));
    arm.set_latency(vm0, Duration::from_secs(10));
    pass(GRACE + Duration::from_secs(5)).await;
    assert_eq!(arm.patches(vm0).len(), 2, "the removal is in flight");
    store.fail_next_saves(1);
    pass(Duration::from_secs(10)).await;
    assert!(!arm.carries(vm0, &uid("x")));
    let early = exec.drain();
    assert!(
        !applied(&early, vm0).contains(&(canonical_id(&uid("x")), false)),
        "{early:?}"
    );
    assert!(
        early
            .iter()
            .any(|r| matches!(r, Report::TargetFailed { .. }))
    );
    assert!(
        store.records(vm0).contains_key(&canonical_id(&uid("x"))),
        "not saved yet"
    );
    pass(Duration::from_secs(60)).await;
    assert_eq!(
        applied(&exec.drain(), vm0),
        vec![(canonical_id(&uid("x")), false)]
    );
    assert!(store.records(vm0).is_empty());
    assert_eq!(
        arm.patches(vm0).len(),
        2,
        "the retry saves; it does not PATCH again"
    );
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_sent_while_the_claim_cannot_be_saved() {
    let (arm, mut cluster, targets) = world();
    let store = MemoryStore::default();
    store.fail_next_saves(2);
    let exec = start(arm.clone(), store.clone(), policy(), quick_config());
    exec.submit(cluster.pod("a", "n-vm0", &["x"]));
    pass(Duration::from_secs(2)).await;
    assert!(arm.patches(&targets[0]).is_empty());
    pass(Duration::from_secs(60)).await;
    assert!(arm.carries(&targets[0], &uid("x")));
    exec.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_emptying_removal_reads_again_and_spares_an_identity_added_meanwhile() {
    let (arm, mut cluster, targets) = world();
    let vm0 = &targets[0];
    let exec = start(
        arm.clone(),
        MemoryStore::default(),
        policy(),
        quick_config(),
    );
    exec.submit(cluster.pod("a", "n-vm0", &["x"]));
    pass(Duration::from_secs(10)).await;
    exec.submit(cluster.delete("a"));
    pass(Duration::from_secs(10)).await;
    // Someone assigns an identity after our last read.
    arm.meddle(vm0, |b| b.insert(&uid("theirs"), None));
    pass(GRACE * 2).await;
    assert!(!arm.carries(vm0, &uid("x")));
    assert!(
        arm.carries(vm0, &uid("theirs")),
        "the emptying PATCH was re-planned after a read"
    );
    exec.stop().await;
}
