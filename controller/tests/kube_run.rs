//! The whole controller wired (no leader election) against a mock API server and an in-memory ARM: a pod's identity is assigned, recorded in the ConfigMap, and reported on the pod.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kube_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use kube_support::{ApiHandle, Seen, client, next, reply, status};
use podid_controller::metrics::Metrics;
use podid_controller::plan::{AssignedIdentities, PatchRequest, Policy, Target};
use podid_controller::run::{Config, Wiring, run_wired};
use podid_controller::seams::{Arm, ArmError};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

const ID: &str = "/subscriptions/sub/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const CM: &str = "/api/v1/namespaces/podid-system/configmaps/podid-state";

/// ARM with one empty scale set; records patches.
#[derive(Clone, Default)]
struct MemoryArm(Arc<Mutex<Vec<PatchRequest>>>);

impl Arm for MemoryArm {
    async fn get_identity(&self, _: &Target) -> Result<AssignedIdentities, ArmError> {
        Ok(AssignedIdentities::default())
    }

    async fn patch_identity(&self, _: &Target, request: &PatchRequest) -> Result<(), ArmError> {
        self.0.lock().unwrap().push(request.clone());
        Ok(())
    }
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn lists() -> BTreeMap<String, Value> {
    let pod = json!({
        "metadata": {"name": "web-1", "namespace": "apps", "uid": "uid-1",
                     "labels": {"podid.io/injected": "true"}, "annotations": {"podid.io/identity": "reader"}},
        "spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Running"}
    });
    let provider = "azure:///subscriptions/sub/resourceGroups/mc/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/3";
    let node = json!({"metadata": {"name": "n1"}, "spec": {"providerID": provider}});
    let ns = json!({"metadata": {"name": "apps", "labels": {"podid.io/inject": "enabled"}}});
    let identity = json!({
        "apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
        "metadata": {"name": "reader", "namespace": "apps"},
        "spec": {"type": 0, "resourceID": ID, "clientID": "c"}
    });
    BTreeMap::from([
        ("/api/v1/pods".into(), list("PodList", vec![pod])),
        ("/api/v1/nodes".into(), list("NodeList", vec![node])),
        ("/api/v1/namespaces".into(), list("NamespaceList", vec![ns])),
        (
            "/apis/aadpodidentity.k8s.io/v1/azureidentities".into(),
            list("L", vec![identity]),
        ),
        (
            "/apis/aadpodidentity.k8s.io/v1/azureidentitybindings".into(),
            list("L", vec![]),
        ),
    ])
}

/// A tiny API server: lists, open watches, a ConfigMap with resourceVersions, and pod writes passed to the test.
async fn serve(mut api: ApiHandle, writes: mpsc::UnboundedSender<Seen>) {
    let lists = lists();
    let (mut open, mut cm, mut rv) = (Vec::new(), None::<Value>, 0);
    loop {
        let (seen, send) = next(&mut api).await;
        match (&seen.method, seen.path.as_str()) {
            (&Method::GET, path) if seen.is_watch() && lists.contains_key(path) => open.push(send),
            (&Method::GET, path) if lists.contains_key(path) => reply(send, 200, &lists[path]),
            (&Method::GET, CM) => match &cm {
                Some(body) => reply(send, 200, body),
                None => reply(send, 404, &status(404, "NotFound")),
            },
            (&Method::POST | &Method::PUT, _)
                if seen.path.starts_with(CM.trim_end_matches("/podid-state")) =>
            {
                rv += 1;
                let mut body = seen.body.clone();
                body["metadata"]["resourceVersion"] = rv.to_string().into();
                reply(send, 200, &body);
                cm = Some(body);
                let _ = writes.send(seen);
            }
            _ => {
                reply(send, 201, &json!({}));
                let _ = writes.send(seen);
            }
        }
    }
}

fn config() -> Config {
    Config {
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        release_namespace: Some("podid-system".into()),
        state_configmap: "podid-state".into(),
        grace_period: Duration::from_secs(120),
        leader_election: None,
        cloud_config: None,
        workload_identity: Default::default(),
        endpoints: Default::default(),
        arm_ca_file: None,
        immutable_identities: vec![],
        shutdown_timeout: Duration::from_secs(5),
        cluster_file: None,
    }
}

#[tokio::test]
async fn a_pod_gets_its_identity_recorded_and_reported() {
    let (client, api) = client();
    let (writes_tx, mut writes) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(api, writes_tx));
    let arm = MemoryArm::default();
    let wiring = Wiring {
        client,
        arm: arm.clone(),
        policy: Policy::new(Duration::from_secs(120)),
        metrics: Metrics::new(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let controller = tokio::spawn(run_wired(config(), wiring, async {
        let _ = stopped.await;
    }));

    let (mut recorded, mut condition, mut event) = (None, None, None);
    while recorded.is_none() || condition.is_none() || event.is_none() {
        let seen = tokio::time::timeout(Duration::from_secs(30), writes.recv())
            .await
            .expect("the controller writes in time")
            .unwrap();
        match seen.path.as_str() {
            "/api/v1/namespaces/apps/pods/web-1/status" => condition = Some(seen.body),
            "/apis/events.k8s.io/v1/namespaces/apps/events" => event = Some(seen.body),
            _ => {
                let data = seen.body["data"].as_object().cloned().unwrap_or_default();
                if data.values().any(|v| v.as_str().unwrap().contains(ID)) {
                    recorded = Some(data);
                }
            }
        }
    }
    let patches = arm.0.lock().unwrap().clone();
    assert_eq!(patches.len(), 1);
    let condition = &condition.unwrap()["status"]["conditions"][0];
    assert_eq!(
        (&condition["status"], &condition["reason"]),
        (&json!("True"), &json!("IdentitiesAssigned"))
    );
    assert_eq!(event.unwrap()["reason"], "IdentityAssigned");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .expect("the controller stops in time")
        .unwrap()
        .unwrap();
    server.abort();
}
