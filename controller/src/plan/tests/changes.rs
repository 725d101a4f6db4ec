//! Change plans: what is added, what is removed and when, and who owns what.

use std::collections::BTreeMap;
use std::time::Duration;

use super::support::*;
use crate::plan::{
    AssignedIdentities, ChangeKind, Desired, IdentityChange, OwnedIdentity, Policy,
    TargetOwnership, TargetPlan, Timestamp, plan, record_success,
};

const GRACE: Duration = Duration::from_secs(60);

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

fn policy() -> Policy {
    Policy::new(GRACE)
}

/// Desired state: pod `p` on vm0 needing `names` (all defined in ns1).
fn wants(names: &[&str]) -> Desired {
    let idx = index(["a", "b", "c", "kubelet", "frozen"].map(|n| msi("ns1", n)));
    let pods = match names {
        [] => vec![],
        _ => vec![pod("ns1", "p", "node-vm0", &names.join(","))],
    };
    desired(&pods, &idx)
}

fn on_vm0(names: &[&str]) -> BTreeMap<crate::plan::Target, AssignedIdentities> {
    let ids: Vec<String> = names.iter().map(|n| uid(n)).collect();
    BTreeMap::from([(
        vm("vm0"),
        AssignedIdentities::new(false, ids.iter().map(String::as_str)),
    )])
}

fn owned(records: &[(&str, Option<i64>)]) -> BTreeMap<crate::plan::Target, TargetOwnership> {
    let records = records
        .iter()
        .map(|(n, since)| {
            let record = OwnedIdentity {
                resource_id: uid(n),
                client_id: Some(format!("client-{n}")),
                unneeded_since: since.map(t),
            };
            (canon(n), record)
        })
        .collect();
    BTreeMap::from([(vm("vm0"), records)])
}

fn vm0_plan(
    d: &Desired,
    actual: &[&str],
    own: &[(&str, Option<i64>)],
    p: &Policy,
    now: i64,
) -> TargetPlan {
    plan(d, &on_vm0(actual), &owned(own), p, t(now)).targets[&vm("vm0")].clone()
}

fn ids(changes: &[IdentityChange]) -> Vec<String> {
    changes.iter().map(|c| c.canonical.clone()).collect()
}

#[test]
fn adds_are_what_pods_need_minus_what_is_there() {
    let p = vm0_plan(&wants(&["a", "b"]), &["a"], &[], &policy(), 0);
    assert_eq!(ids(&p.adds), vec![canon("b")]);
    assert_eq!(p.adds[0].resource_id, uid("b"));
    assert_eq!(p.adds[0].client_id.as_deref(), Some("client-b"));
    assert!(p.removals.is_empty() && p.deferred.is_empty());
    assert!(
        p.ownership.is_empty(),
        "an identity already there is not ours"
    );
}

#[test]
fn foreign_identities_are_never_removed_nor_owned() {
    let p = vm0_plan(&wants(&[]), &["a", "b"], &[], &policy(), 10_000);
    assert!(p.removals.is_empty() && p.deferred.is_empty() && p.ownership.is_empty());
}

#[test]
fn an_identity_no_longer_needed_is_removed_only_after_the_grace_period() {
    let d = wants(&[]);
    let first = vm0_plan(&d, &["a"], &[("a", None)], &policy(), 100);
    assert!(first.removals.is_empty());
    assert_eq!(first.ownership[&canon("a")].unneeded_since, Some(t(100)));
    assert_eq!(first.deferred[0].due, t(160));
    assert_eq!(first.next_due(), Some(t(160)));
    let early = vm0_plan(&d, &["a"], &[("a", Some(100))], &policy(), 159);
    assert!(early.removals.is_empty());
    assert_eq!(
        early.ownership[&canon("a")].unneeded_since,
        Some(t(100)),
        "not reset"
    );
    let due = vm0_plan(&d, &["a"], &[("a", Some(100))], &policy(), 160);
    assert_eq!(ids(&due.removals), vec![canon("a")]);
    assert!(due.deferred.is_empty());
    assert!(
        due.ownership.contains_key(&canon("a")),
        "owned until the removal succeeds"
    );
}

#[test]
fn a_need_that_comes_back_clears_the_unneeded_time() {
    let p = vm0_plan(&wants(&["a"]), &["a"], &[("a", Some(0))], &policy(), 1_000);
    assert!(p.removals.is_empty() && p.deferred.is_empty());
    assert_eq!(p.ownership[&canon("a")].unneeded_since, None);
}

#[test]
fn immutable_identities_are_never_removed_by_resource_or_client_id() {
    let by_client = policy().with_immutable(["CLIENT-FROZEN"]);
    let p = vm0_plan(
        &wants(&[]),
        &["frozen"],
        &[("frozen", Some(0))],
        &by_client,
        10_000,
    );
    assert!(p.removals.is_empty() && p.deferred.is_empty());
    let upper = uid("frozen").to_ascii_uppercase();
    let by_id = policy().with_immutable([upper.as_str()]);
    let p = vm0_plan(
        &wants(&[]),
        &["frozen"],
        &[("frozen", Some(0))],
        &by_id,
        10_000,
    );
    assert!(p.removals.is_empty());
}

#[test]
fn the_cluster_identity_is_never_removed_even_when_we_added_it() {
    let cluster = policy().with_cluster_identity(&uid("kubelet").to_ascii_uppercase());
    let p = vm0_plan(
        &wants(&[]),
        &["kubelet"],
        &[("kubelet", Some(0))],
        &cluster,
        10_000,
    );
    assert!(p.removals.is_empty() && p.deferred.is_empty());
    let mut actual = on_vm0(&[]);
    let block = actual.get_mut(&vm("vm0")).expect("vm0");
    block.insert(&uid("kubelet"), Some("Kubelet-Client".into()));
    let mut own = owned(&[("kubelet", Some(0))]);
    own.get_mut(&vm("vm0"))
        .expect("vm0")
        .get_mut(&canon("kubelet"))
        .expect("rec")
        .client_id = None;
    let by_arm_client = policy().with_cluster_identity("kubelet-client");
    let p = plan(&wants(&[]), &actual, &own, &by_arm_client, t(10_000));
    assert!(
        p.targets[&vm("vm0")].removals.is_empty(),
        "client id as ARM reports it"
    );
}

#[test]
fn unknown_actual_state_plans_no_changes_but_still_tracks_needs() {
    let d = wants(&["b"]);
    let p = plan(
        &d,
        &BTreeMap::new(),
        &owned(&[("a", None)]),
        &policy(),
        t(5),
    );
    let vm0 = &p.targets[&vm("vm0")];
    assert!(vm0.needs_read());
    assert!(vm0.adds.is_empty() && vm0.removals.is_empty() && vm0.requests().is_empty());
    assert_eq!(vm0.ownership[&canon("a")].unneeded_since, Some(t(5)));
}

#[test]
fn an_owned_identity_someone_else_removed_is_forgotten_unless_needed() {
    let gone = vm0_plan(&wants(&[]), &[], &[("a", Some(0))], &policy(), 10_000);
    assert!(gone.ownership.is_empty() && gone.removals.is_empty());
    let needed = vm0_plan(&wants(&["a"]), &[], &[("a", Some(0))], &policy(), 10_000);
    assert_eq!(ids(&needed.adds), vec![canon("a")]);
    assert!(needed.ownership.contains_key(&canon("a")));
}

#[test]
fn removals_are_sent_in_the_recorded_casing() {
    let mut own = owned(&[("a", Some(0))]);
    let odd = uid("a").replace("resourceGroups", "RESOURCEGROUPS");
    own.get_mut(&vm("vm0"))
        .expect("vm0")
        .get_mut(&canon("a"))
        .expect("rec")
        .resource_id = odd.clone();
    let p = plan(&wants(&[]), &on_vm0(&["a"]), &own, &policy(), t(1_000));
    assert_eq!(p.targets[&vm("vm0")].removals[0].resource_id, odd);
}

#[test]
fn record_keys_in_any_casing_are_matched() {
    let mut own = owned(&[]);
    let record = OwnedIdentity {
        resource_id: uid("a"),
        client_id: None,
        unneeded_since: Some(t(0)),
    };
    own.get_mut(&vm("vm0"))
        .expect("vm0")
        .insert(uid("a"), record);
    let p = plan(&wants(&[]), &on_vm0(&["a"]), &own, &policy(), t(1_000));
    assert_eq!(ids(&p.targets[&vm("vm0")].removals), vec![canon("a")]);
}

#[test]
fn a_successful_add_makes_the_identity_owned_and_then_removable() {
    let p = vm0_plan(&wants(&["a"]), &[], &[], &policy(), 0);
    let requests = p.requests();
    assert_eq!(requests.len(), 1);
    let own = record_success(&p.ownership, &requests[0].changes);
    assert_eq!(own[&canon("a")].resource_id, uid("a"));
    let mut block = p.actual.clone().expect("known");
    block.apply(&requests[0].changes);
    let actual = BTreeMap::from([(vm("vm0"), block)]);
    let unneeded = plan(
        &wants(&[]),
        &actual,
        &BTreeMap::from([(vm("vm0"), own)]),
        &policy(),
        t(10),
    );
    let own = unneeded.targets[&vm("vm0")].ownership.clone();
    let due = plan(
        &wants(&[]),
        &actual,
        &BTreeMap::from([(vm("vm0"), own)]),
        &policy(),
        t(70),
    );
    let kinds: Vec<_> = due.targets[&vm("vm0")]
        .removals
        .iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(kinds, vec![ChangeKind::Remove]);
}

#[test]
fn targets_with_only_records_or_only_actual_state_are_planned() {
    let mut actual = on_vm0(&["a"]);
    actual.insert(vm("vm1"), AssignedIdentities::new(true, []));
    let p = plan(&wants(&[]), &actual, &BTreeMap::new(), &policy(), t(0));
    assert_eq!(p.targets.len(), 2);
    assert!(p.targets.values().all(|tp| tp.changes().is_empty()));
    assert_eq!(p.next_due(), None);
}
