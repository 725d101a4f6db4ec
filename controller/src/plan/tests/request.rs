//! PATCH bodies: the delta, the type computed from what remains, the 150-change split.

use serde_json::json;

use super::support::*;
use crate::plan::{
    AssignedIdentities, IdentityChange, IdentityType, MAX_CHANGES_PER_REQUEST, build_requests,
};

fn block(system: bool, names: &[&str]) -> AssignedIdentities {
    let ids: Vec<String> = names.iter().map(|n| uid(n)).collect();
    AssignedIdentities::new(system, ids.iter().map(String::as_str))
}

#[test]
fn adding_sends_empty_objects_and_removing_sends_null() {
    let changes = [
        IdentityChange::add(&uid("b"), None),
        IdentityChange::remove(&uid("a")),
    ];
    let r = build_requests(&vm("vm0"), &block(false, &["a", "c"]), &changes);
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].body(),
        json!({"identity": {"type": "UserAssigned",
            "userAssignedIdentities": {uid("b"): {}, uid("a"): null}}})
    );
    assert!(!r[0].clears_user_assigned);
}

#[test]
fn a_system_assigned_identity_that_is_on_is_kept() {
    let r = build_requests(
        &vmss("ss0"),
        &block(true, &[]),
        &[IdentityChange::add(&uid("a"), None)],
    );
    assert_eq!(r[0].identity_type, IdentityType::SystemAssignedUserAssigned);
    assert_eq!(
        r[0].body()["identity"]["type"],
        "SystemAssigned, UserAssigned"
    );
}

#[test]
fn removing_the_last_user_identity_sends_only_the_type() {
    let remove = [IdentityChange::remove(&uid("a"))];
    let r = build_requests(&vm("vm0"), &block(false, &["a"]), &remove);
    assert_eq!(r[0].body(), json!({"identity": {"type": "None"}}));
    assert!(r[0].clears_user_assigned);
    let r = build_requests(&vm("vm0"), &block(true, &["a"]), &remove);
    assert_eq!(r[0].body(), json!({"identity": {"type": "SystemAssigned"}}));
}

#[test]
fn a_foreign_identity_that_remains_keeps_the_type_user_assigned() {
    let r = build_requests(
        &vm("vm0"),
        &block(false, &["a", "foreign"]),
        &[IdentityChange::remove(&uid("a"))],
    );
    assert_eq!(r[0].identity_type, IdentityType::UserAssigned);
    assert_eq!(
        r[0].body()["identity"]["userAssignedIdentities"],
        json!({uid("a"): null})
    );
}

#[test]
fn ids_are_sent_in_the_casing_given() {
    let odd = uid("a").to_ascii_uppercase();
    let r = build_requests(
        &vm("vm0"),
        &block(false, &[]),
        &[IdentityChange::add(&odd, None)],
    );
    assert!(
        r[0].body()["identity"]["userAssignedIdentities"]
            .get(&odd)
            .is_some()
    );
}

#[test]
fn more_than_150_changes_are_split_adds_first_each_typed_from_what_remains() {
    let names: Vec<String> = (0..200).map(|i| format!("n{i:03}")).collect();
    let mut changes: Vec<IdentityChange> = names
        .iter()
        .map(|n| IdentityChange::add(&uid(n), None))
        .collect();
    let old: Vec<String> = (0..120).map(|i| format!("old{i:03}")).collect();
    changes.splice(0..0, old.iter().map(|n| IdentityChange::remove(&uid(n))));
    let actual = block(true, &old.iter().map(String::as_str).collect::<Vec<_>>());
    let r = build_requests(&vmss("ss0"), &actual, &changes);
    assert_eq!(
        r.iter().map(|x| x.changes.len()).collect::<Vec<_>>(),
        [150, 150, 20]
    );
    assert!(r.iter().all(|x| x.changes.len() <= MAX_CHANGES_PER_REQUEST));
    assert!(
        r[0].changes
            .iter()
            .all(|c| c.kind == crate::plan::ChangeKind::Add)
    );
    assert!(
        r.iter()
            .all(|x| x.identity_type == IdentityType::SystemAssignedUserAssigned)
    );
    let total: usize = r
        .iter()
        .map(|x| {
            x.body()["identity"]["userAssignedIdentities"]
                .as_object()
                .map_or(0, |m| m.len())
        })
        .sum();
    assert_eq!(total, 320);
}

#[test]
fn removing_more_than_150_last_identities_clears_only_in_the_final_request() {
    let names: Vec<String> = (0..151).map(|i| format!("n{i:03}")).collect();
    let actual = block(false, &names.iter().map(String::as_str).collect::<Vec<_>>());
    let changes: Vec<IdentityChange> = names
        .iter()
        .map(|n| IdentityChange::remove(&uid(n)))
        .collect();
    let r = build_requests(&vm("vm0"), &actual, &changes);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].identity_type, IdentityType::UserAssigned);
    assert!(!r[0].clears_user_assigned);
    assert_eq!(r[1].body(), json!({"identity": {"type": "None"}}));
}

#[test]
fn no_changes_make_no_requests() {
    assert!(build_requests(&vm("vm0"), &block(true, &["a"]), &[]).is_empty());
}
