//! The planner's PATCH bodies against ARM's shapes: read by the emulated ARM as planned, and identical to what azure-mgmt-compute sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Range;
use std::process::Command;

use podid_azure_emulator::arm::auth::Caller;
use podid_azure_emulator::arm::resource::resource_json;
use podid_azure_emulator::arm::update::{UpdateContext, parse_update};
use podid_azure_emulator::sdk::{python_with_azure_mgmt_compute, sdk_shape_script};
use podid_azure_emulator::{AzureState, Target as EmuTarget, UnknownIdentityAnswer};
use podid_controller::plan::{
    AssignedIdentities, IdentityChange, PatchRequest, Target, build_requests,
};
use serde_json::json;

/// A world with identities `id-000`…`id-199`, VM vm0 and scale set ss0, and
/// the planner's view of them.
fn world() -> (AzureState, Vec<String>) {
    let mut s = AzureState::default();
    let ids = (0..200)
        .map(|i| s.add_identity(&format!("id-{i:03}")).resource_id)
        .collect();
    s.add_vm("vm0").unwrap();
    s.add_scale_set("ss0").unwrap();
    (s, ids)
}

fn target(s: &AzureState, t: &EmuTarget) -> Target {
    let (id, kind) = match t {
        EmuTarget::Vm(n) => (s.vm(n).unwrap().resource_id.clone(), "virtualMachines"),
        EmuTarget::ScaleSet(n) => (
            s.scale_set(n).unwrap().resource_id.clone(),
            "virtualMachineScaleSets",
        ),
    };
    let provider = match kind {
        "virtualMachines" => format!("azure://{id}"),
        _ => format!("azure://{id}/virtualMachines/0"),
    };
    Target::from_provider_id(&provider).unwrap()
}

/// The emulated ARM's reading of the planner's request, applied.
fn arm_applies(s: &mut AzureState, t: &EmuTarget, req: &PatchRequest) {
    let caller = Caller {
        client_id: "c".into(),
        object_id: "o".into(),
    };
    let resource_id = req.target.arm_id();
    let ctx = UpdateContext {
        state: s,
        target: t,
        resource_id: &resource_id,
        caller: &caller,
        unknown: UnknownIdentityAnswer::default(),
    };
    let update = parse_update(&ctx, req.body().to_string().as_bytes())
        .unwrap_or_else(|e| panic!("ARM refused {}: {e:?}", req.body()))
        .unwrap();
    s.apply_identity_update(t, &update).unwrap();
}

fn actual_of(s: &AzureState, t: &EmuTarget) -> AssignedIdentities {
    AssignedIdentities::from_arm_json(&resource_json(s, t, "Succeeded").unwrap()).unwrap()
}

/// A case: system identity on, ids carried, ids added, ids removed (ranges over the world's identities).
type Scenario = (bool, Range<usize>, Range<usize>, Range<usize>);

const SCENARIOS: [Scenario; 5] = [
    (false, 0..0, 0..3, 0..0),
    (true, 0..2, 2..4, 0..1),
    (false, 0..2, 0..0, 0..2),
    (true, 0..2, 0..0, 0..2),
    (true, 0..40, 40..200, 0..40),
];

fn requests_for(s: &AzureState, ids: &[String], t: &Target, scenario: usize) -> Vec<PatchRequest> {
    let (_, _, add, remove) = SCENARIOS[scenario].clone();
    let changes: Vec<IdentityChange> = ids[add]
        .iter()
        .map(|i| IdentityChange::add(i, None))
        .chain(
            ids[remove]
                .iter()
                .map(|i| IdentityChange::remove(&i.to_ascii_uppercase())),
        )
        .collect();
    let actual = actual_of(s, &emu(t));
    build_requests(t, &actual, &changes)
}

fn emu(t: &Target) -> EmuTarget {
    match t {
        Target::Vm { name, .. } => EmuTarget::Vm(name.clone()),
        Target::Vmss { name, .. } => EmuTarget::ScaleSet(name.clone()),
    }
}

fn prepared(scenario: usize, on: &EmuTarget) -> (AzureState, Vec<String>, Target) {
    let (mut s, ids) = world();
    let (system, carried, _, _) = SCENARIOS[scenario].clone();
    s.set_system_identity(on, system).unwrap();
    for id in &ids[carried] {
        s.assign(on, id).unwrap();
    }
    let t = target(&s, on);
    (s, ids, t)
}

#[test]
fn the_emulated_arm_applies_planned_requests_exactly_as_the_planner_expects() {
    for scenario in 0..SCENARIOS.len() {
        for on in [
            EmuTarget::Vm("vm0".into()),
            EmuTarget::ScaleSet("ss0".into()),
        ] {
            let (mut s, ids, t) = prepared(scenario, &on);
            let mut expected = actual_of(&s, &on);
            for req in requests_for(&s, &ids, &t, scenario) {
                arm_applies(&mut s, &on, &req);
                expected.apply(&req.changes);
                let after = actual_of(&s, &on);
                assert_eq!(
                    after.system_assigned, expected.system_assigned,
                    "scenario {scenario}"
                );
                let keys =
                    |a: &AssignedIdentities| a.user_assigned().keys().cloned().collect::<Vec<_>>();
                assert_eq!(
                    keys(&after),
                    keys(&expected),
                    "scenario {scenario} on {on:?}"
                );
            }
        }
    }
}

#[test]
fn planned_requests_are_byte_for_byte_what_azure_mgmt_compute_sends() {
    let Some(python) = python_with_azure_mgmt_compute() else {
        return;
    };
    let mut cases = Vec::new();
    for scenario in 0..SCENARIOS.len() {
        for on in [
            EmuTarget::Vm("vm0".into()),
            EmuTarget::ScaleSet("ss0".into()),
        ] {
            let (s, ids, t) = prepared(scenario, &on);
            let kind = if matches!(on, EmuTarget::Vm(_)) {
                "vm"
            } else {
                "vmss"
            };
            for req in requests_for(&s, &ids, &t, scenario) {
                cases.push(json!({"kind": kind, "body": req.body()}));
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.json");
    std::fs::write(&file, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = sdk_shape_script();
    let out = Command::new(python)
        .arg(script)
        .arg("requests")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["requests"].as_u64(), Some(cases.len() as u64));
}
