//! The demo's world: one VM, two identities (one for the demo pod, one for another team), the pod, and every file the programs read.

use podid_e2e::world::{GROUP, Identity, SUBSCRIPTION, TENANT};
use serde_json::{Value, json};

/// The demo pod's namespace (opted in).
pub const NAMESPACE: &str = "demo";
/// The demo pod.
pub const POD: &str = "reporter";
/// Another team's namespace, where the foreign identity is declared.
pub const OTHER_NAMESPACE: &str = "team-b";
/// The node the pod runs on, and its VM.
pub const NODE: &str = "aks-nodepool1-0";
/// The VM's name in the stand-in.
pub const VM: &str = "vm0";
/// The controller's service principal (azure.json).
pub const CONTROLLER_CLIENT_ID: &str = "c0c0c0c0-0000-4000-8000-00000000de00";
/// Its secret (a demo value, known to the stand-in only).
pub const CONTROLLER_SECRET: &str = "demo-secret-not-for-production";

/// The demo pod's identity: assigned to the VM by the controller.
pub const STORAGE: Identity = Identity {
    name: "storage-reader",
    client_id: "5701a6e0-0000-4000-8000-0000000000a1",
    object_id: "5701a6e0-0000-4000-8000-0000000000a2",
};
/// Another team's identity, already on the same VM: the demo pod must never get its token.
pub const OTHER: Identity = Identity {
    name: "team-b-writer",
    client_id: "7eab0000-0000-4000-8000-0000000000b1",
    object_id: "7eab0000-0000-4000-8000-0000000000b2",
};

/// The stand-in's identities file: both identities, `OTHER` on the VM, the controller's principal.
pub fn azure_world() -> String {
    let mut s = format!(
        "tenantId: {TENANT}\nsubscriptionId: {SUBSCRIPTION}\nresourceGroup: {GROUP}\nidentities:\n"
    );
    for id in [STORAGE, OTHER] {
        s += &format!(
            "  - {{name: {}, clientId: {}, principalId: {}}}\n",
            id.name, id.client_id, id.object_id
        );
    }
    s += &format!("vms:\n  - name: {VM}\n    identities: [{}]\n", OTHER.name);
    s + &format!(
        "servicePrincipals:\n  - {{clientId: {CONTROLLER_CLIENT_ID}, secrets: [{CONTROLLER_SECRET}]}}\n"
    )
}

fn azure_identity(id: Identity, namespace: &str) -> Value {
    json!({
        "apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
        "metadata": {"name": id.name, "namespace": namespace},
        "spec": {"type": 0, "resourceID": id.resource_id(), "clientID": id.client_id},
    })
}

/// AzureIdentity objects: `STORAGE` in the demo namespace, `OTHER` in the other team's.
pub fn identity_objects() -> Vec<Value> {
    vec![
        azure_identity(STORAGE, NAMESPACE),
        azure_identity(OTHER, OTHER_NAMESPACE),
    ]
}

/// A pod of the demo namespace naming `identity`, as its author writes it.
pub fn pod(name: &str, identity: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "annotations": {"podid.io/identity": identity}},
        "spec": {"containers": [{"name": "app", "image": "example/reporter:1",
                                 "securityContext": {"runAsUser": 1000}}]},
    })
}

/// The AdmissionReview the API server sends for creating `pod`.
pub fn review(uid: &str, pod: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"]["name"], "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {"username": "demo-user", "groups": ["system:authenticated"]},
            "object": pod, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    })
}

/// The node's `spec.providerID`: the VM in the stand-in.
pub fn provider_id() -> String {
    format!(
        "azure:///subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Compute/virtualMachines/{VM}"
    )
}

/// The cluster as the controller's `--cluster-file` reads it: the opted-in
/// namespace, the node, the admitted pod scheduled and running on it, and the identities.
pub fn cluster(admitted_pod: &Value) -> Result<String, String> {
    let mut pod = admitted_pod.clone();
    pod["metadata"]["uid"] = json!("0de00000-0000-4000-8000-000000000001");
    pod["spec"]["nodeName"] = json!(NODE);
    pod["status"] = json!({"phase": "Running"});
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": NAMESPACE, "labels": {"podid.io/inject": "enabled"}}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
               "spec": {"providerID": provider_id()}}),
        pod,
    ];
    docs.extend(identity_objects());
    yaml_documents(&docs)
}

/// `docs` as one multi-document YAML text.
pub fn yaml_documents(docs: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    for doc in docs {
        out += "---\n";
        out += &serde_yaml::to_string(doc).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The controller's cloud config (azure.json): tenant, subscription, its service principal.
pub fn azure_json() -> String {
    json!({
        "cloud": "AzurePublicCloud", "tenantId": TENANT, "subscriptionId": SUBSCRIPTION,
        "resourceGroup": GROUP, "vmType": "standard",
        "aadClientId": CONTROLLER_CLIENT_ID, "aadClientSecret": CONTROLLER_SECRET,
    })
    .to_string()
}
