//! The cluster file, the file store and the log sink.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use podid_core::azure_ids::Target;

use super::*;
use crate::kube::ClusterIndex;
use crate::plan::{OwnedIdentity, TargetOwnership, desired_state};
use crate::seams::OwnershipStore;

const ID: &str = "/subscriptions/sub/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const VM: &str =
    "/subscriptions/sub/resourceGroups/mc/providers/Microsoft.Compute/virtualMachines/vm0";

/// A namespace, a node on vm0, an injected pod wanting `reader` through a binding, and the objects.
fn cluster() -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: apps, labels: {{podid.io/inject: enabled}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: other}}
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Node
    metadata: {{name: node0}}
    spec: {{providerID: "azure://{VM}"}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: apps
  uid: u1
  labels: {{podid.io/injected: "true", aadpodidbinding: web}}
spec: {{nodeName: node0, containers: [{{name: app, image: app}}]}}
status: {{phase: Running}}
---
apiVersion: v1
kind: Pod
metadata: {{name: plain, namespace: apps, annotations: {{podid.io/identity: reader}}}}
spec: {{nodeName: node0, containers: [{{name: app, image: app}}]}}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {{name: reader, namespace: apps}}
spec: {{type: 0, resourceID: "{ID}", clientID: c1}}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {{name: web-binding, namespace: apps}}
spec: {{azureIdentity: reader, selector: web}}
---
"#
    )
}

fn parse(text: &str) -> Result<ClusterFile, SourceError> {
    ClusterFile::parse(Path::new("c.yaml"), text)
}

#[test]
fn the_file_is_read_with_the_watches_selectors() {
    let file = parse(&cluster()).unwrap();
    let names = |pods: &[k8s_openapi::api::core::v1::Pod]| -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    };
    // The pod without podid.io/injected and the namespace without the label are not watched.
    assert_eq!(names(&file.pods), ["web"]);
    assert_eq!(file.namespaces.len(), 1);
    assert_eq!(file.nodes.len(), 1, "items of a List count");
    assert_eq!((file.identities.len(), file.bindings.len()), (1, 1));
}

#[test]
fn the_index_fed_from_the_file_gives_the_planner_the_pods_needs() {
    let index = ClusterIndex::new();
    assert!(!index.is_synced());
    parse(&cluster()).unwrap().apply_to(&index);
    assert!(index.is_synced());
    let desired = desired_state(&index.snapshot().view());
    let target = Target::from_arm_id(VM).unwrap();
    let ids: Vec<&String> = desired.targets[&target].keys().collect();
    assert_eq!(ids, [&ID.to_ascii_lowercase()]);
}

#[test]
fn a_second_read_replaces_the_first_as_a_relist_does() {
    let index = ClusterIndex::new();
    parse(&cluster()).unwrap().apply_to(&index);
    let without_pod: String = cluster()
        .replace("name: web\n", "name: gone\n")
        .replace("podid.io/injected: \"true\", ", "");
    parse(&without_pod).unwrap().apply_to(&index);
    let snapshot = index.snapshot();
    assert!(snapshot.pods.is_empty(), "{:?}", snapshot.pods);
    assert!(desired_state(&snapshot.view()).targets.is_empty());
}

#[test]
fn bad_documents_are_refused_with_their_position_and_cause() {
    let cases = [
        ("a: [unclosed", "document 1: not YAML"),
        (
            "kind: Pod\napiVersion: v1\nmetadata: 5",
            "document 1: not a valid Pod",
        ),
        (
            "{apiVersion: v1, kind: Node, metadata: {name: n}}\n---\napiVersion: apps/v1\nkind: Deployment",
            "document 2: apiVersion \"apps/v1\" kind \"Deployment\" is not read",
        ),
        (
            "kind: List\napiVersion: v1",
            "document 1: a List without items",
        ),
        ("just a string", "document 1: apiVersion \"\" kind \"\""),
        (
            "apiVersion: aadpodidentity.k8s.io/v2\nkind: AzureIdentity",
            "is not read by the controller",
        ),
    ];
    for (text, expected) in cases {
        let err = parse(text).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
        assert!(err.starts_with("cluster file c.yaml"), "{err}");
    }
    let missing = ClusterFile::read(Path::new("/nonexistent/podid/c.yaml")).unwrap_err();
    assert!(
        missing.to_string().contains("reading the cluster file"),
        "{missing}"
    );
}

#[test]
fn empty_documents_are_skipped() {
    let file = parse("---\n---\n# nothing\n").unwrap();
    assert!(file.pods.is_empty() && file.nodes.is_empty());
}

fn records() -> TargetOwnership {
    TargetOwnership::from([(
        ID.to_ascii_lowercase(),
        OwnedIdentity {
            resource_id: ID.into(),
            client_id: Some("c1".into()),
            unneeded_since: None,
        },
    )])
}

#[tokio::test]
async fn the_file_store_keeps_records_in_the_configmaps_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let store = FileStore::new(&path);
    assert!(
        store.load().await.unwrap().is_empty(),
        "no file: no records"
    );
    let target = Target::from_arm_id(VM).unwrap();
    store.save(&target, &records()).await.unwrap();
    let data: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        [&crate::kube::key_of(&target)]
    );
    // A new store (a restart) reads what the old one wrote.
    let loaded = FileStore::new(&path).load().await.unwrap();
    assert_eq!(loaded[&target], records());
    store.save(&target, &TargetOwnership::new()).await.unwrap();
    assert!(
        store.load().await.unwrap().is_empty(),
        "empty records: no key"
    );
}

#[tokio::test]
async fn a_corrupt_state_file_is_an_error_not_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, "not json").unwrap();
    let store = FileStore::new(&path);
    let err = store.load().await.unwrap_err();
    assert!(err.0.contains("is not a JSON object of strings"), "{err}");
    // Saving must not overwrite what it cannot read.
    let target = Target::from_arm_id(VM).unwrap();
    assert!(store.save(&target, &records()).await.is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
}

#[tokio::test]
async fn the_file_is_watched_and_a_bad_version_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, cluster()).unwrap();
    let index = std::sync::Arc::new(ClusterIndex::new());
    let seen = stamp(&path);
    ClusterFile::read(&path).unwrap().apply_to(&index);
    let watcher = tokio::spawn(watch_file(path.clone(), index.clone(), seen));
    let mut changes = index.subscribe();
    std::fs::write(&path, "kind: [broken").unwrap();
    tokio::time::sleep(POLL_INTERVAL * 2).await;
    assert_eq!(
        index.snapshot().pods.len(),
        1,
        "the broken file changed nothing"
    );
    std::fs::write(&path, "").unwrap();
    let waited = tokio::time::timeout(POLL_INTERVAL * 5, changes.changed()).await;
    assert!(waited.is_ok(), "the emptied file was not picked up");
    assert!(index.snapshot().pods.is_empty());
    watcher.abort();
}
