//! Conditions and Events decided from the desired state and the executor's reports.

use std::collections::BTreeMap;

use crate::kube::{ConditionState, Observed, StatusBook, judge, reasons};
use crate::plan::{Desired, IdentityChange, PodKey, PodNeed, PodProblem, Target, WantedIdentity};
use crate::seams::Report;
use podid_core::resolve::ResolveError;

const ID_A: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/A";

fn target() -> Target {
    Target::Vmss {
        subscription: "s".into(),
        resource_group: "g".into(),
        name: "pool".into(),
    }
}

fn need(uid: &str) -> PodNeed {
    PodNeed {
        pod: PodKey {
            namespace: "apps".into(),
            name: format!("pod-{uid}"),
        },
        uid: uid.into(),
        node: "n1".into(),
        target: Some(target()),
        identities: vec![WantedIdentity {
            name: "a".into(),
            resource_id: ID_A.into(),
            canonical: ID_A.to_ascii_lowercase(),
            client_id: "c".into(),
        }],
        problems: vec![],
    }
}

fn applied() -> Report {
    Report::Applied {
        target: target(),
        changes: vec![IdentityChange::add(ID_A, Some("c".into()))],
    }
}

fn desired(pods: Vec<PodNeed>) -> Desired {
    Desired {
        targets: BTreeMap::new(),
        pods,
    }
}

#[test]
fn an_applied_identity_makes_the_condition_true_with_one_normal_event() {
    let mut observed = Observed::default();
    observed.record(&applied());
    let v = judge(&need("u1"), &observed);
    let c = v.condition.unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", reasons::ASSIGNED)
    );
    assert!(
        c.message
            .contains("a assigned to /subscriptions/s/resourceGroups/g/")
    );
    assert_eq!(v.events.len(), 1);
    assert!(!v.events[0].1.warning);
    assert_eq!(v.events[0].1.reason, "IdentityAssigned");
    assert!(v.events[0].1.note.contains(ID_A));
}

#[test]
fn a_refused_identity_makes_the_condition_false_with_a_warning_naming_identity_and_target() {
    let mut observed = Observed::default();
    observed.record(&Report::IdentityFailed {
        target: target(),
        identities: vec![ID_A.into()],
        reason: "LinkedAuthorizationFailed".into(),
    });
    let v = judge(&need("u1"), &observed);
    let c = v.condition.unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reasons::FAILED)
    );
    let e = &v.events[0].1;
    assert!(e.warning);
    assert_eq!(e.reason, "IdentityAssignmentFailed");
    assert!(e.note.contains(ID_A) && e.note.contains("virtualMachineScaleSets/pool"));
    assert!(e.note.contains("LinkedAuthorizationFailed"));
}

#[test]
fn a_pod_problem_is_reported_without_a_target() {
    let mut n = need("u1");
    n.target = None;
    n.problems = vec![PodProblem::Unresolved(ResolveError::NotFound {
        name: "a".into(),
        namespace: "apps".into(),
    })];
    let v = judge(&n, &Observed::default());
    let c = v.condition.unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reasons::FAILED)
    );
    assert!(v.events[0].1.warning);
}

#[test]
fn a_node_not_seen_yet_leaves_the_pod_pending_without_a_warning() {
    let mut n = need("u1");
    n.target = None;
    n.problems = vec![PodProblem::UnknownNode { node: "n1".into() }];
    let v = judge(&n, &Observed::default());
    assert_eq!(v.condition.unwrap().reason, reasons::PENDING);
    assert!(v.events.is_empty());
}

#[test]
fn a_pending_pod_gets_no_first_condition_but_a_throttled_target_is_explained() {
    let mut book = StatusBook::default();
    let d = desired(vec![need("u1")]);
    let mut observed = Observed::default();
    assert!(book.writes(&d, &BTreeMap::new(), &observed).is_empty());
    observed.record(&Report::TargetFailed {
        target: target(),
        reason: "throttled".into(),
    });
    let w = book.writes(&d, &BTreeMap::new(), &observed);
    let c = w[0].condition.as_ref().unwrap();
    assert_eq!(c.reason, reasons::TARGET_UNAVAILABLE);
    assert!(w[0].transition);
}

#[test]
fn each_event_and_condition_is_written_once() {
    let mut book = StatusBook::default();
    let d = desired(vec![need("u1")]);
    let mut observed = Observed::default();
    observed.record(&applied());
    let first = book.writes(&d, &BTreeMap::new(), &observed);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].events.len(), 1);
    assert!(book.writes(&d, &BTreeMap::new(), &observed).is_empty());
}

#[test]
fn after_a_restart_a_pod_already_marked_assigned_is_not_told_again() {
    let mut book = StatusBook::default();
    let d = desired(vec![need("u1")]);
    let mut observed = Observed::default();
    observed.record(&applied());
    let verdict = judge(&need("u1"), &observed);
    let current = BTreeMap::from([(need("u1").pod, verdict.condition.unwrap())]);
    assert!(book.writes(&d, &current, &observed).is_empty());
}

#[test]
fn a_failed_write_is_retried_on_the_next_round() {
    let mut book = StatusBook::default();
    let d = desired(vec![need("u1")]);
    let mut observed = Observed::default();
    observed.record(&applied());
    assert_eq!(book.writes(&d, &BTreeMap::new(), &observed).len(), 1);
    book.unwritten("u1");
    let again = book.writes(&d, &BTreeMap::new(), &observed);
    assert!(again[0].condition.is_some());
    assert!(again[0].events.is_empty(), "events are not repeated");
}

#[test]
fn an_outdated_true_condition_turns_pending_when_the_identity_is_gone() {
    let mut book = StatusBook::default();
    let d = desired(vec![need("u1")]);
    let mut observed = Observed::default();
    observed.read(&target(), []);
    let current = BTreeMap::from([(
        need("u1").pod,
        ConditionState {
            status: "True".into(),
            reason: reasons::ASSIGNED.into(),
            message: "old".into(),
        },
    )]);
    let w = book.writes(&d, &current, &observed);
    let c = w[0].condition.as_ref().unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reasons::PENDING)
    );
    assert!(w[0].transition);
}

#[test]
fn a_read_target_carrying_the_identity_counts_as_assigned() {
    let mut observed = Observed::default();
    observed.read(&target(), [ID_A]);
    let v = judge(&need("u1"), &observed);
    assert_eq!(v.condition.unwrap().status, "True");
}
