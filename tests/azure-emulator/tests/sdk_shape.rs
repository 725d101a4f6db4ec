//! The emulated ARM's bodies and long-running operations, checked by azure-mgmt-compute itself (tests/sdk_shape.py).
//!
//! Needs the project venv (`.venv`, made by scripts/install-test-deps.sh) with
//! `requirements.txt` installed, or `PODID_TEST_PYTHON` naming such a python;
//! without it the tests say so loudly and pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::arm::*;
use common::*;
use podid_azure_emulator::Target;
use podid_azure_emulator::sdk::{python_with_azure_mgmt_compute, sdk_shape_script};
use serde_json::json;

/// Runs the script; asserts it succeeded and printed `{"ok": true, …}`.
fn run(python: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python)
        .arg(sdk_shape_script())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sdk_shape.py {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    v
}

#[tokio::test]
async fn get_and_patch_bodies_read_as_azure_sdk_models() {
    let Some(python) = python_with_azure_mgmt_compute() else {
        return;
    };
    let a = start_arm(quick()).await;
    a.e.assign_to_vm("vm0", "id-a").unwrap();
    a.e.write(|s| s.set_system_identity(&Target::Vm("vm0".into()), true))
        .unwrap();
    a.e.assign_to_scale_set("ss0", "id-b").unwrap();
    let add =
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.id("id-c"): {}}}});
    let patched = a.patch(&a.vmss("ss0"), &add).await;
    assert_eq!(patched.status, 200);
    let bodies = json!({
        "vm": a.get(&a.vm("vm0")).await.json(),
        "vm_plain": a.get(&a.vm("vm1")).await.json(),
        "vmss_updating": patched.json(),
        "vmss": a.get(&a.vmss("ss0")).await.json(),
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bodies.json");
    std::fs::write(&file, bodies.to_string()).unwrap();
    let v = run(&python, &["bodies", file.to_str().unwrap()]);
    assert_eq!(v["checked"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn the_azure_sdk_reads_and_updates_vms_and_scale_sets_through_long_running_operations() {
    let Some(python) = python_with_azure_mgmt_compute() else {
        return;
    };
    let a = start_arm(quick()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &a.ca).unwrap();
    let (sub, group) =
        a.e.read(|s| (s.subscription_id.clone(), s.resource_group.clone()));
    let endpoint = a.e.arm_endpoint().unwrap();
    let identity = a.id("id-a");
    let args = [
        "live",
        "--endpoint",
        &endpoint,
        "--ca",
        ca.to_str().unwrap(),
        "--subscription",
        &sub,
        "--group",
        &group,
        "--vm",
        "vm0",
        "--vmss",
        "ss0",
        "--identity",
        &identity,
    ];
    // The SDK blocks while it polls: run it off the runtime that serves it.
    let python2 = python.clone();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let v = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&python2, &refs)
    })
    .await
    .unwrap();
    assert_eq!(v["vm"], "UserAssigned");
    let imds = a.e.imds_addr("vm0").unwrap();
    let r = imds_token(imds, &format!("&client_id={}", client_id(&a.e, "id-a"))).await;
    assert_eq!(r.status, 200, "the SDK's update reached IMDS: {}", r.body);
    assert!(a.e.arm_patches(&Target::ScaleSet("ss0".into())) >= 2);
    assert_eq!(a.e.arm_counters().operations_succeeded, 3);
}
