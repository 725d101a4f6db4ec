//! Watch → index against a mock API server: the five lists and watches the controller opens, and the ClusterView built from what they return.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kube_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube_support::{ApiHandle, Seen, client, next, reply, reply_lines};
use podid_controller::kube::{ClusterIndex, watch_cluster};
use podid_controller::plan::{Target, desired_state};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const PODS: &str = "/api/v1/pods";
const NODES: &str = "/api/v1/nodes";
const NAMESPACES: &str = "/api/v1/namespaces";
const IDENTITIES: &str = "/apis/aadpodidentity.k8s.io/v1/azureidentities";
const BINDINGS: &str = "/apis/aadpodidentity.k8s.io/v1/azureidentitybindings";
const SUB: &str = "/subscriptions/sub";
const ID_READER: &str = "/subscriptions/sub/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const ID_WRITER: &str = "/subscriptions/sub/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/writer";

fn pod(name: &str, node: &str, annotation: &str, label: Option<&str>) -> Value {
    let mut labels = json!({"podid.io/injected": "true"});
    if let Some(selector) = label {
        labels["aadpodidbinding"] = selector.into();
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}"), "resourceVersion": "11",
                     "labels": labels, "annotations": {"podid.io/identity": annotation}},
        "spec": {"nodeName": node, "containers": [{"name": "app"}]},
        "status": {"phase": "Running"}
    })
}

fn node(name: &str, provider_id: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "resourceVersion": "11"},
        "spec": {"providerID": provider_id}
    })
}

fn identity(name: &str, resource_id: &str) -> Value {
    // List items of custom resources do carry apiVersion and kind.
    json!({
        "apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"type": 0, "resourceID": resource_id, "clientID": format!("client-{name}")}
    })
}

fn binding(name: &str, identity: &str, selector: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"azureIdentity": identity, "selector": selector}
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

fn initial_lists() -> BTreeMap<&'static str, Value> {
    let vmss = format!(
        "azure://{SUB}/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool1/virtualMachines/0"
    );
    BTreeMap::from([
        (
            PODS,
            list("PodList", vec![pod("web-1", "n1", "reader", None)]),
        ),
        (NODES, list("NodeList", vec![node("n1", &vmss)])),
        (
            NAMESPACES,
            list(
                "NamespaceList",
                vec![
                    json!({"metadata": {"name": "apps", "labels": {"podid.io/inject": "enabled"}}}),
                ],
            ),
        ),
        (
            IDENTITIES,
            list(
                "AzureIdentityList",
                vec![identity("reader", ID_READER), identity("writer", ID_WRITER)],
            ),
        ),
        // Without apiVersion and kind: the controller must not depend on them.
        (
            BINDINGS,
            list(
                "AzureIdentityBindingList",
                vec![binding("w", "writer", "writers")],
            ),
        ),
    ])
}

/// The events each kind's first watch delivers.
fn watch_events() -> BTreeMap<&'static str, Vec<Value>> {
    let vm = format!(
        "azure://{SUB}/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachines/vm-2"
    );
    BTreeMap::from([
        (
            PODS,
            vec![json!({"type": "ADDED", "object": pod("job-1", "n2", "reader", Some("writers"))})],
        ),
        (
            NODES,
            vec![json!({"type": "ADDED", "object": node("n2", &vm)})],
        ),
    ])
}

/// Serves lists, then one watch per kind with its events; later watches stay open.
async fn serve(
    mut api: ApiHandle,
    mut lists: BTreeMap<&'static str, Value>,
    mut events: BTreeMap<&'static str, Vec<Value>>,
    seen: oneshot::Sender<Vec<Seen>>,
) {
    let (mut requests, mut open) = (Vec::new(), Vec::new());
    while lists.len() + events.len() > 0 {
        let (request, send) = next(&mut api).await;
        let path = request.path.clone();
        if request.is_watch() {
            match events.remove(path.as_str()) {
                Some(lines) => reply_lines(send, &lines),
                None => open.push(send),
            }
        } else {
            match lists.remove(path.as_str()) {
                Some(body) => reply(send, 200, &body),
                None => panic!("unexpected second list of {path}"),
            }
        }
        requests.push(request);
    }
    let _ = seen.send(requests);
    // Keep the open watches (and the mock) alive until the test ends.
    loop {
        let (_, send) = next(&mut api).await;
        open.push(send);
    }
}

#[tokio::test]
async fn lists_and_watch_events_become_the_clusterview_the_planner_reads() {
    let (client, api) = client();
    let (seen_tx, seen_rx) = oneshot::channel();
    let server = tokio::spawn(serve(api, initial_lists(), watch_events(), seen_tx));
    let index = Arc::new(ClusterIndex::new());
    let watcher = tokio::spawn(watch_cluster(client, Arc::clone(&index)));
    let requests = tokio::time::timeout(Duration::from_secs(30), seen_rx)
        .await
        .unwrap()
        .unwrap();

    let list_of = |path: &str| {
        requests
            .iter()
            .find(|r| r.path == path && !r.is_watch())
            .unwrap()
    };
    assert_eq!(
        list_of(PODS).param("labelSelector"),
        Some("podid.io/injected=true")
    );
    assert_eq!(
        list_of(NAMESPACES).param("labelSelector"),
        Some("podid.io/inject=enabled")
    );
    assert_eq!(list_of(NODES).param("labelSelector"), None);
    assert!(list_of(IDENTITIES).param("labelSelector").is_none());
    let pod_watch = requests
        .iter()
        .find(|r| r.path == PODS && r.is_watch())
        .unwrap();
    assert_eq!(
        pod_watch.param("labelSelector"),
        Some("podid.io/injected=true")
    );
    assert_eq!(pod_watch.param("resourceVersion"), Some("10"));

    let snapshot = wait_for(&index, |s| s.pods.len() == 2 && s.nodes.len() == 2).await;
    assert!(index.is_synced());
    assert_eq!(snapshot.opted_in.iter().collect::<Vec<_>>(), ["apps"]);
    assert_eq!(snapshot.identities.identity_count(), 2);
    assert_eq!(snapshot.identities.binding_count(), 1);

    let desired = desired_state(&snapshot.view());
    let vmss = Target::Vmss {
        subscription: "sub".into(),
        resource_group: "mc_rg".into(),
        name: "pool1".into(),
    };
    let vm = Target::Vm {
        subscription: "sub".into(),
        resource_group: "mc_rg".into(),
        name: "vm-2".into(),
    };
    let ids = |t: &Target| desired.targets[t].keys().cloned().collect::<Vec<_>>();
    assert_eq!(ids(&vmss), [ID_READER.to_ascii_lowercase()]);
    assert_eq!(
        ids(&vm),
        [
            ID_READER.to_ascii_lowercase(),
            ID_WRITER.to_ascii_lowercase()
        ]
    );
    assert!(
        desired.pods.iter().all(|p| p.problems.is_empty()),
        "{:?}",
        desired.pods
    );
    watcher.abort();
    server.abort();
}

#[tokio::test]
async fn a_namespace_leaving_the_selection_takes_its_pods_out_of_the_desired_state() {
    let (client, api) = client();
    let (seen_tx, seen_rx) = oneshot::channel();
    let apps = json!({"metadata": {"name": "apps", "resourceVersion": "12"}});
    let events = BTreeMap::from([(NAMESPACES, vec![json!({"type": "DELETED", "object": apps})])]);
    let server = tokio::spawn(serve(api, initial_lists(), events, seen_tx));
    let index = Arc::new(ClusterIndex::new());
    let watcher = tokio::spawn(watch_cluster(client, Arc::clone(&index)));
    tokio::time::timeout(Duration::from_secs(30), seen_rx)
        .await
        .unwrap()
        .unwrap();
    let snapshot = wait_for(&index, |s| s.opted_in.is_empty()).await;
    assert_eq!(snapshot.pods.len(), 1, "the pod is still watched");
    let desired = desired_state(&snapshot.view());
    assert!(desired.pods.is_empty() && desired.targets.is_empty());
    watcher.abort();
    server.abort();
}

async fn wait_for(
    index: &ClusterIndex,
    done: impl Fn(&podid_controller::kube::ClusterSnapshot) -> bool,
) -> podid_controller::kube::ClusterSnapshot {
    let mut changes = index.subscribe();
    loop {
        let snapshot = index.snapshot();
        if index.is_synced() && done(&snapshot) {
            return snapshot;
        }
        if tokio::time::timeout(Duration::from_secs(30), changes.changed())
            .await
            .is_err()
        {
            panic!(
                "the index did not get there: synced {}, {snapshot:#?}",
                index.is_synced()
            );
        }
    }
}
