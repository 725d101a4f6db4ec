//! ARM PATCH of identities over HTTPS: the delta, type transitions, refusals, long-running operations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::arm::*;
use common::*;
use podid_azure_emulator::{ArmConfig, PatchAnswer, Target, UnknownIdentityAnswer};
use serde_json::{Value, json};

fn vm0() -> Target {
    Target::Vm("vm0".into())
}

fn users(v: &Value) -> Vec<String> {
    let map = v["identity"]["userAssignedIdentities"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut keys: Vec<String> = map.keys().map(|k| k.to_ascii_lowercase()).collect();
    keys.sort();
    keys
}

fn ids(a: &Arm, names: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = names.iter().map(|n| a.id(n).to_ascii_lowercase()).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn an_added_identity_is_visible_to_get_and_imds_only_once_the_operation_succeeded() {
    let a = start_arm(ArmConfig {
        vm_latency: Duration::from_millis(300),
        ..quick()
    })
    .await;
    let body =
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.id("id-a"): {}}}});
    let r = a.patch(&a.vm("vm0"), &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["properties"]["provisioningState"], "Updating");
    let async_op = r.header("azure-asyncoperation").unwrap();
    assert!(
        async_op.starts_with("https://localhost:")
            && async_op.contains("/providers/Microsoft.Compute/locations/westeurope/operations/")
    );
    assert!(r.header("location").unwrap().ends_with("&monitor=true"));
    let during = a.get(&a.vm("vm0")).await.json();
    assert_eq!(during["properties"]["provisioningState"], "Updating");
    assert!(
        users(&during).is_empty(),
        "not visible before the end: {during}"
    );
    let imds = a.e.imds_addr("vm0").unwrap();
    let cid = client_id(&a.e, "id-a");
    imds_token(imds, &format!("&client_id={cid}"))
        .await
        .assert_imds_error(400, "invalid_request");
    assert_eq!(a.e.arm_in_flight(), 1);
    let done = a.wait(&r).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert!(done["startTime"].is_string() && done["endTime"].is_string());
    let after = a.get(&a.vm("vm0")).await.json();
    assert_eq!(after["properties"]["provisioningState"], "Succeeded");
    assert_eq!(users(&after), ids(&a, &["id-a"]));
    assert_eq!(
        imds_token(imds, &format!("&client_id={cid}")).await.status,
        200
    );
}

#[tokio::test]
async fn a_delta_merges_and_null_removes_leaving_other_identities() {
    let a = start_arm(quick()).await;
    a.e.assign_to_vm("vm0", "id-a").unwrap();
    a.e.assign_to_vm("vm0", "id-b").unwrap();
    let body = json!({"identity": {"type": "UserAssigned",
        "userAssignedIdentities": {a.id("id-c").to_ascii_uppercase(): {}, a.id("id-a"): null}}});
    let r = a.patch(&a.vm("vm0"), &body).await;
    assert_eq!(a.wait(&r).await["status"], "Succeeded");
    assert_eq!(
        users(&a.get(&a.vm("vm0")).await.json()),
        ids(&a, &["id-b", "id-c"])
    );
}

#[tokio::test]
async fn the_type_decides_whether_system_and_user_identities_stay() {
    let a = start_arm(quick()).await;
    a.e.assign_to_scale_set("ss0", "id-a").unwrap();
    a.e.write(|s| s.set_system_identity(&Target::ScaleSet("ss0".into()), true))
        .unwrap();
    let path = a.vmss("ss0");
    let principal = a.get(&path).await.json()["identity"]["principalId"].clone();
    let step = |kind: &str, map: Option<Value>| {
        let mut identity = json!({"type": kind});
        if let Some(m) = map {
            identity["userAssignedIdentities"] = m;
        }
        json!({"identity": identity})
    };
    let keep = step(
        "SystemAssigned, UserAssigned",
        Some(json!({a.id("id-b"): {}})),
    );
    a.wait(&a.patch(&path, &keep).await).await;
    let v = a.get(&path).await.json();
    assert_eq!(
        v["identity"]["principalId"], principal,
        "system identity kept"
    );
    assert_eq!(users(&v), ids(&a, &["id-a", "id-b"]));
    a.wait(&a.patch(&path, &step("SystemAssigned", None)).await)
        .await;
    let v = a.get(&path).await.json();
    assert_eq!(v["identity"]["type"], "SystemAssigned");
    assert!(users(&v).is_empty());
    a.wait(
        &a.patch(
            &path,
            &step("UserAssigned", Some(json!({a.id("id-c"): {}}))),
        )
        .await,
    )
    .await;
    let v = a.get(&path).await.json();
    assert_eq!(v["identity"]["type"], "UserAssigned");
    assert!(
        v["identity"].get("principalId").is_none(),
        "system identity dropped"
    );
    a.wait(&a.patch(&path, &step("None", None)).await).await;
    assert!(a.get(&path).await.json().get("identity").is_none());
}

#[tokio::test]
async fn a_map_with_type_none_or_system_assigned_is_refused() {
    let a = start_arm(quick()).await;
    for kind in ["None", "SystemAssigned"] {
        let body =
            json!({"identity": {"type": kind, "userAssignedIdentities": {a.id("id-a"): null}}});
        let r = a.patch(&a.vm("vm0"), &body).await;
        assert_eq!(r.status, 400, "{kind}");
        let e = &r.json()["error"];
        assert_eq!(e["code"], "InvalidParameter");
        assert_eq!(
            e["message"],
            format!(
                "ResourceIdentity identityIds should not be provided if the type is \"{kind}\"."
            )
        );
    }
    assert_eq!(a.e.arm_counters().operations_started, 0);
}

#[tokio::test]
async fn type_user_assigned_that_leaves_no_identity_is_refused() {
    let a = start_arm(quick()).await;
    a.e.assign_to_vm("vm0", "id-a").unwrap();
    let body = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.id("id-a"): null}}});
    let r = a.patch(&a.vm("vm0"), &body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "InvalidParameter");
}

#[tokio::test]
async fn more_than_150_changes_are_refused_with_arms_text_and_150_pass() {
    let mut state = world();
    let names: Vec<String> = (0..151).map(|i| format!("bulk-{i:03}")).collect();
    for n in &names {
        state.add_identity(n);
    }
    let a = start_arm_with(state, quick()).await;
    let map = |n: usize| -> Value {
        names[..n]
            .iter()
            .map(|x| (a.id(x), json!({})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let body = |n| json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": map(n)}});
    let r = a.patch(&a.vmss("ss0"), &body(151)).await;
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "FailedIdentityOperation");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(
            "User Assigned Identities Number '151' Assign exceed limit '150' in one request."
        ),
        "{message}"
    );
    let r = a.patch(&a.vmss("ss0"), &body(150)).await;
    assert_eq!(a.wait(&r).await["status"], "Succeeded");
    assert_eq!(users(&a.get(&a.vmss("ss0")).await.json()).len(), 150);
}

#[tokio::test]
async fn an_unknown_or_deleted_identity_is_refused_and_nothing_is_applied() {
    let a = start_arm(quick()).await;
    let ghost = a.id("id-a").replace("/id-a", "/ghost");
    let body = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {ghost.clone(): {}, a.id("id-b"): {}}}});
    let r = a.patch(&a.vm("vm0"), &body).await;
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "FailedIdentityOperation");
    assert!(e["message"].as_str().unwrap().contains(&format!(
        "Resource '{}' was not found.",
        ghost.to_ascii_lowercase()
    )));
    assert!(users(&a.get(&a.vm("vm0")).await.json()).is_empty());
    a.e.assign_to_vm("vm1", "id-c").unwrap();
    a.e.delete_identity("id-c").unwrap();
    a.e.set_arm_config(ArmConfig {
        unknown_identity: UnknownIdentityAnswer::NotFound404,
        ..quick()
    });
    let remove = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.e.read(|s| s.vm("vm1").unwrap().identity.user_assigned.iter().next().unwrap().clone()): null}}});
    let r = a.patch(&a.vm("vm1"), &remove).await;
    assert_eq!(
        r.status, 404,
        "a deleted identity cannot be removed by id: {}",
        r.body
    );
    assert_eq!(r.json()["error"]["code"], "FailedIdentityOperation");
}

#[tokio::test]
async fn adding_an_identity_the_caller_may_not_assign_is_403_naming_it() {
    let a = start_arm(quick()).await;
    a.e.set_caller_can_assign("id-b", false).unwrap();
    let body = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.id("id-a"): {}, a.id("id-b"): {}}}});
    let r = a.patch(&a.vmss("ss0"), &body).await;
    assert_eq!(r.status, 403);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "LinkedAuthorizationFailed");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&a.id("id-b")) && !message.contains(&a.id("id-a")),
        "{message}"
    );
    assert!(message.contains("Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"));
    a.e.set_caller_can_assign("id-b", true).unwrap();
    assert_eq!(a.patch(&a.vmss("ss0"), &body).await.status, 200);
}

#[tokio::test]
async fn a_second_patch_while_an_operation_runs_is_409_and_other_targets_go_on() {
    let a = start_arm(ArmConfig {
        vm_latency: Duration::from_millis(400),
        ..quick()
    })
    .await;
    let add = |n: &str| json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.id(n): {}}}});
    let first = a.patch(&a.vm("vm0"), &add("id-a")).await;
    let second = a.patch(&a.vm("vm0"), &add("id-b")).await;
    assert_eq!(second.status, 409);
    assert_eq!(second.json()["error"]["code"], "AnotherOperationInProgress");
    let other = a.patch(&a.vm("vm1"), &add("id-b")).await;
    assert_eq!(other.status, 200);
    assert_eq!(a.e.arm_counters().max_in_flight, 2);
    a.wait(&first).await;
    a.wait(&other).await;
    assert_eq!(a.e.arm_in_flight(), 0);
    assert_eq!(a.patch(&a.vm("vm0"), &add("id-b")).await.status, 200);
}

#[tokio::test]
async fn a_failed_operation_applies_nothing() {
    let a = start_arm(quick()).await;
    a.e.assign_to_vm("vm0", "id-a").unwrap();
    a.e.fail_arm_operations(Some(vm0()), 1);
    let body = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.id("id-b"): {}, a.id("id-a"): null}}});
    let done = a.wait(&a.patch(&a.vm("vm0"), &body).await).await;
    assert_eq!(done["status"], "Failed");
    assert!(done["error"]["code"].is_string());
    let v = a.get(&a.vm("vm0")).await.json();
    assert_eq!(users(&v), ids(&a, &["id-a"]));
    assert_eq!(v["properties"]["provisioningState"], "Failed");
    assert_eq!(
        a.wait(&a.patch(&a.vm("vm0"), &body).await).await["status"],
        "Succeeded"
    );
    assert_eq!(a.e.arm_counters().operations_failed, 1);
}

#[tokio::test]
async fn a_patch_can_be_answered_202_and_the_location_monitor_reports_202_until_done() {
    let config = ArmConfig {
        patch_answer: PatchAnswer::Accepted202,
        vm_latency: Duration::from_millis(300),
        ..quick()
    };
    let a = start_arm(config).await;
    let body =
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.id("id-a"): {}}}});
    let r = a.patch(&a.vm("vm0"), &body).await;
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
    let monitor = Arm::local(r.header("location").unwrap());
    assert_eq!(a.get(&monitor).await.status, 202);
    a.wait(&r).await;
    let end = a.get(&monitor).await;
    assert_eq!(end.status, 200);
    assert_eq!(end.json()["status"], "Succeeded");
}

#[tokio::test]
async fn malformed_bodies_are_refused_with_arm_codes() {
    let a = start_arm(quick()).await;
    let cases = [
        ("not json", "InvalidRequestContent"),
        (
            r#"{"identity": {"type": "Everything"}}"#,
            "InvalidParameter",
        ),
        (
            r#"{"identity": {"userAssignedIdentities": {}}}"#,
            "InvalidParameter",
        ),
        (
            r#"{"identity": {"type": "UserAssigned", "userAssignedIdentities": {"x": "yes"}}}"#,
            "InvalidIdentityValues",
        ),
    ];
    for (body, code) in cases {
        let r = a.send("PATCH", &a.vm("vm0"), Some(BEARER), body).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["error"]["code"], code, "{body}");
    }
    let tags_only = a.patch(&a.vm("vm0"), &json!({"tags": {"a": "b"}})).await;
    assert_eq!(a.wait(&tags_only).await["status"], "Succeeded");
    let unknown_op = a
        .get(
            &Arm::local(tags_only.header("azure-asyncoperation").unwrap())
                .replace("/operations/", "/operations/x"),
        )
        .await;
    assert_eq!(unknown_op.status, 404);
}
