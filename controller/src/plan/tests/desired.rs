//! Desired state: which pods count, where their identities go, and what is reported per pod.

use podid_core::model::IdentityType;
use podid_core::names;
use podid_core::resolve::ResolveError;

use super::support::*;
use crate::plan::{PodPhase, PodProblem};

#[test]
fn running_pod_needs_its_identities_on_its_nodes_vm() {
    let idx = index([msi("ns1", "a"), msi("ns1", "b")]);
    let d = desired(&[pod("ns1", "p", "node-vm0", "a, b")], &idx);
    assert_eq!(needed_on(&d, &vm("vm0")), vec![canon("a"), canon("b")]);
    let need = &d.pods[0];
    assert_eq!(need.target, Some(vm("vm0")));
    assert_eq!(need.identities[0].name, "a", "default identity first");
    assert_eq!(need.identities[1].resource_id, uid("b"));
    assert!(need.problems.is_empty());
}

#[test]
fn federated_identities_are_never_assigned_to_the_node() {
    use podid_core::model::Credential;
    let federated = |name: &str, resource_id: &str| {
        let mut id = msi_with_id("ns1", name, resource_id);
        id.spec.tenant_id = "t".into();
        id.credential = Credential::Federated;
        id
    };
    // With or without a resourceID (which federation does not need): never wanted, never a problem.
    let idx = index([
        msi("ns1", "a"),
        federated("f", &uid("f")),
        federated("g", ""),
    ]);
    let d = desired(
        &[
            pod("ns1", "mixed", "node-vm0", "f, a"),
            pod("ns1", "all-federated", "node-vm1", "f, g"),
        ],
        &idx,
    );
    assert_eq!(needed_on(&d, &vm("vm0")), vec![canon("a")]);
    assert!(needed_on(&d, &vm("vm1")).is_empty(), "{:?}", d.targets);
    assert!(d.pods.iter().all(|p| p.problems.is_empty()), "{:?}", d.pods);
    assert_eq!(d.pods[0].identities.len(), 1);
}

#[test]
fn scale_set_instances_share_the_scale_sets_target() {
    let idx = index([msi("ns1", "a"), msi("ns1", "b")]);
    let pods = [
        pod("ns1", "p0", "node-ss0-0", "a"),
        pod("ns1", "p1", "node-ss0-1", "b"),
    ];
    let d = desired(&pods, &idx);
    assert_eq!(d.targets.len(), 1);
    assert_eq!(needed_on(&d, &vmss("ss0")), vec![canon("a"), canon("b")]);
}

#[test]
fn pods_out_of_scope_need_nothing_and_are_not_reported() {
    let idx = index([msi("ns1", "a"), msi("off", "a"), msi("kube-system", "a")]);
    let mut unscheduled = pod("ns1", "unscheduled", "", "a");
    unscheduled.node_name = Some(String::new());
    let mut succeeded = pod("ns1", "done", "node-vm0", "a");
    succeeded.phase = PodPhase::Succeeded;
    let mut failed = pod("ns1", "failed", "node-vm0", "a");
    failed.phase = PodPhase::Failed;
    let pods = [
        pod("off", "not-opted-in", "node-vm0", "a"),
        pod("kube-system", "system", "node-vm0", "a"),
        pod("ns1", "no-node", "", "a"),
        unscheduled,
        succeeded,
        failed,
    ];
    let d = desired(&pods, &idx);
    assert!(d.targets.is_empty(), "{:?}", d.targets);
    assert!(d.pods.is_empty());
}

#[test]
fn pending_and_unknown_phase_pods_on_a_node_still_need_identities() {
    let idx = index([msi("ns1", "a")]);
    let mut pending = pod("ns1", "pending", "node-vm0", "a");
    pending.phase = PodPhase::Pending;
    let mut unknown = pod("ns1", "unknown", "node-vm1", "a");
    unknown.phase = PodPhase::Unknown;
    let d = desired(&[pending, unknown], &idx);
    assert_eq!(needed_on(&d, &vm("vm0")), vec![canon("a")]);
    assert_eq!(needed_on(&d, &vm("vm1")), vec![canon("a")]);
}

#[test]
fn node_without_azure_provider_id_is_a_pod_problem() {
    let idx = index([msi("ns1", "a")]);
    let pods = [
        pod("ns1", "kind", "kind-node", "a"),
        pod("ns1", "fresh", "new-node", "a"),
        pod("ns1", "ghost", "no-such-node", "a"),
    ];
    let d = desired(&pods, &idx);
    assert!(d.targets.is_empty());
    let kinds: Vec<_> = d.pods.iter().map(|p| p.problems[0].kind()).collect();
    assert_eq!(kinds, ["not_azure", "not_azure", "unknown_node"]);
    assert!(d.pods.iter().all(|p| p.target.is_none()));
    assert_eq!(d.pods[0].identities.len(), 1, "still reports what it wants");
}

#[test]
fn one_unresolvable_reference_keeps_the_others() {
    let idx = index([msi("ns1", "a")]);
    let d = desired(&[pod("ns1", "p", "node-vm0", "missing, a")], &idx);
    assert_eq!(needed_on(&d, &vm("vm0")), vec![canon("a")]);
    assert_eq!(
        d.pods[0].problems,
        vec![PodProblem::Unresolved(ResolveError::NotFound {
            name: "missing".into(),
            namespace: "ns1".into()
        })]
    );
}

#[test]
fn identities_resolve_only_in_the_pods_namespace() {
    let idx = index([msi("ns2", "a")]);
    let d = desired(&[pod("ns1", "p", "node-vm0", "a")], &idx);
    assert!(d.targets.is_empty());
    assert_eq!(d.pods[0].problems[0].kind(), "unresolved");
}

#[test]
fn aadpodidbinding_label_binds_identities_and_missing_targets_are_reported() {
    let mut idx = index([msi("ns1", "a")]);
    idx.upsert_binding(binding("ns1", "bind-a", "a", "app"));
    idx.upsert_binding(binding("ns1", "bind-x", "x", "app"));
    let mut p = pod("ns1", "p", "node-vm0", "");
    p.labels
        .insert(names::AAD_BINDING_LABEL.into(), "app".into());
    let d = desired(&[p.clone()], &idx);
    assert_eq!(needed_on(&d, &vm("vm0")), vec![canon("a")]);
    assert!(matches!(
        &d.pods[0].problems[..],
        [PodProblem::Unresolved(ResolveError::BindingTargetNotFound { binding, .. })] if binding == "bind-x"
    ));
    p.labels
        .insert(names::AAD_BINDING_LABEL.into(), "nothing".into());
    let d = desired(&[p], &idx);
    assert!(matches!(
        &d.pods[0].problems[..],
        [PodProblem::Unresolved(ResolveError::NoBinding { .. })]
    ));
}

#[test]
fn service_principal_identities_are_not_assigned_to_vms() {
    let mut sp = msi("ns1", "sp");
    sp.spec.kind = IdentityType::ServicePrincipal;
    sp.spec.tenant_id = "t".into();
    sp.spec.client_password = Some(podid_core::model::SecretRef {
        name: "s".into(),
        namespace: String::new(),
    });
    let d = desired(&[pod("ns1", "p", "node-vm0", "sp")], &index([sp]));
    assert!(d.targets.is_empty());
    assert!(d.pods[0].identities.is_empty() && d.pods[0].problems.is_empty());
}

#[test]
fn malformed_or_missing_resource_ids_are_per_identity_problems() {
    let idx = index([
        msi_with_id("ns1", "empty", ""),
        msi_with_id(
            "ns1",
            "vm",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/x",
        ),
        msi("ns1", "good"),
    ]);
    let d = desired(&[pod("ns1", "p", "node-vm0", "empty, vm, good")], &idx);
    assert_eq!(needed_on(&d, &vm("vm0")), vec![canon("good")]);
    let kinds: Vec<_> = d.pods[0].problems.iter().map(PodProblem::kind).collect();
    assert_eq!(kinds, ["no_resource_id", "bad_resource_id"]);
}

#[test]
fn ids_written_in_pod_annotations_are_never_trusted() {
    let idx = index([msi("ns1", "a")]);
    let mut p = pod("ns1", "p", "node-vm0", "a");
    let forged = format!(
        r#"{{"identities":[{{"name":"a","resourceID":"{}"}}]}}"#,
        uid("root")
    );
    p.annotations
        .insert(names::STATUS_ANNOTATION.into(), forged);
    let d = desired(&[p], &idx);
    assert_eq!(needed_on(&d, &vm("vm0")), vec![canon("a")]);
}

#[test]
fn the_same_identity_written_in_two_casings_is_one_need_sent_in_a_stable_casing() {
    let upper = uid("a").to_ascii_uppercase();
    let idx = index([msi("ns1", "a"), msi_with_id("ns2", "a", &upper)]);
    let pods = [
        pod("ns1", "p1", "node-vm0", "a"),
        pod("ns2", "p2", "node-vm0", "a"),
    ];
    let d = desired(&pods, &idx);
    let need = &d.targets[&vm("vm0")][&canon("a")];
    assert_eq!(need.pods.len(), 2);
    assert_eq!(
        need.resource_id, upper,
        "the smaller spelling, whatever the pod order"
    );
    let reversed = desired(&[pods[1].clone(), pods[0].clone()], &idx);
    assert_eq!(reversed.targets, d.targets);
}
