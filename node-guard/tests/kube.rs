//! The guard against a mock API server: the watch of its node's pods (nothing before the first complete list), the blocked-access Event, and the uninstall decision at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The controller's mock API server, shared rather than copied.
#[path = "../../controller/tests/kube_support/mod.rs"]
mod kube_support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use http::Method;
use kube_support::{client, expect, next, reply, reply_lines, status};
use podid_core::guard::{AllowedSet, GuardPod, GuardPolicy};
use podid_node_guard::events::Blocked;
use podid_node_guard::events::EventSink as _;
use podid_node_guard::kube::{KubeEvents, daemonset_is_going, watch_pods};
use podid_node_guard::metrics::Metrics;
use podid_node_guard::sync::Snapshot;
use serde_json::{Value, json};
use tokio::sync::watch;

const DAEMONSET: &str = "/apis/apps/v1/namespaces/podid-system/daemonsets/podid-node-guard";

fn pod(name: &str, ip: &str, injected: bool) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}"), "resourceVersion": "11"},
        "spec": {"nodeName": "node-0", "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "podIP": ip},
    });
    if injected {
        let status = json!({"version": 1, "layout": "legacy", "initContainers": ["podid-init"],
                            "containers": ["podid-proxy"], "volumes": [], "identities": []});
        pod["metadata"]["labels"] = json!({"podid.io/injected": "true"});
        pod["metadata"]["annotations"] = json!({"podid.io/status": status.to_string()});
        pod["spec"]["containers"] =
            json!([{"name": "podid-proxy", "image": "podid/proxy:0.1.0"}, {"name": "app"}]);
        pod["status"]["containerStatuses"] = json!([{"name": "podid-proxy", "state": {"running": {}},
            "ready": true, "restartCount": 0, "image": "podid/proxy:0.1.0", "imageID": ""}]);
    }
    pod
}

fn allowed(snapshot: &Snapshot) -> BTreeSet<Ipv4Addr> {
    AllowedSet::from_pods(snapshot.as_deref().unwrap().iter()).allowed
}

async fn changed(rx: &mut watch::Receiver<Snapshot>) -> Snapshot {
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .unwrap()
        .unwrap();
    rx.borrow_and_update().clone()
}

#[tokio::test]
async fn the_watch_publishes_nothing_before_the_first_complete_list_then_every_change() {
    let (client, mut api) = client();
    let (tx, mut rx) = watch::channel(None);
    let task = tokio::spawn(watch_pods(
        client,
        "node-0".into(),
        GuardPolicy::default(),
        Metrics::new().0,
        tx,
    ));

    let (list, send) = next(&mut api).await;
    assert_eq!(
        (list.path.as_str(), list.is_watch()),
        ("/api/v1/pods", false)
    );
    assert_eq!(list.param("fieldSelector"), Some("spec.nodeName=node-0"));
    assert!(rx.borrow().is_none(), "published before the list");
    let items = vec![
        pod("web", "10.0.0.1", true),
        pod("plain", "10.0.0.2", false),
    ];
    reply(
        send,
        200,
        &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "10"}, "items": items}),
    );
    let first = changed(&mut rx).await;
    assert_eq!(first.as_deref().unwrap().len(), 2);
    assert_eq!(allowed(&first), ["10.0.0.1".parse().unwrap()].into());

    let (watch, send) = next(&mut api).await;
    assert!(watch.is_watch(), "{watch:?}");
    assert_eq!(watch.param("fieldSelector"), Some("spec.nodeName=node-0"));
    assert_eq!(watch.param("resourceVersion"), Some("10"));
    reply_lines(
        send,
        &[
            json!({"type": "ADDED", "object": pod("api", "10.0.0.3", true)}),
            json!({"type": "DELETED", "object": pod("web", "10.0.0.1", true)}),
        ],
    );
    let mut latest = changed(&mut rx).await;
    while latest.as_deref().unwrap().iter().any(|p| p.name == "web") {
        latest = changed(&mut rx).await;
    }
    let names: Vec<&str> = latest
        .as_deref()
        .unwrap()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["api", "plain"]);
    assert_eq!(allowed(&latest), ["10.0.0.3".parse().unwrap()].into());
    task.abort();
}

#[tokio::test]
async fn a_blocked_attempt_is_a_warning_event_on_the_pod() {
    let (client, mut api) = client();
    let events = KubeEvents::new(client, "podid-node-guard-x1".into());
    let pod =
        GuardPod::from_json(&pod("plain", "10.0.0.2", false), 0, &GuardPolicy::default()).unwrap();
    let blocked = Blocked {
        pod,
        note: format!(
            "IMDS access blocked by podid-node-guard: pod apps/plain {}",
            "x".repeat(2000)
        ),
    };
    let server = expect(
        &mut api,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/apps/events",
        201,
        json!({}),
    );
    let (sent, seen) = tokio::join!(events.publish(&blocked), server);
    sent.unwrap();
    let e = &seen.body;
    assert_eq!(
        (
            e["type"].as_str(),
            e["reason"].as_str(),
            e["action"].as_str()
        ),
        (Some("Warning"), Some("IMDSBlocked"), Some("BlockIMDS"))
    );
    assert_eq!(
        e["regarding"],
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "apps", "name": "plain", "uid": "uid-plain"})
    );
    assert_eq!(e["reportingController"], "podid.io/node-guard");
    assert_eq!(e["reportingInstance"], "podid-node-guard-x1");
    let note = e["note"].as_str().unwrap();
    assert!(
        note.starts_with("IMDS access blocked by podid-node-guard: pod apps/plain")
            && note.len() <= 1024,
        "{note}"
    );
}

#[tokio::test]
async fn rules_are_removed_only_when_the_daemonset_is_going_away() {
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": "podid-node-guard", "namespace": "podid-system"}});
    let mut deleting = ds.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-04T22:00:00Z");
    let cases = [
        (200, ds, Some(false)),                         // rolling update: keep
        (200, deleting, Some(true)),                    // foreground deletion
        (404, status(404, "NotFound"), Some(true)),     // helm uninstall (background deletion)
        (401, status(401, "Unauthorized"), Some(true)), // its ServiceAccount is gone
        (403, status(403, "Forbidden"), Some(true)),    // its Role is gone
        (500, status(500, "InternalError"), None), // cannot tell: an error, the caller keeps the rules
    ];
    for (code, body, want) in cases {
        let (client, mut api) = client();
        let (got, _) = tokio::join!(
            daemonset_is_going(client, "podid-system", "podid-node-guard"),
            expect(&mut api, Method::GET, DAEMONSET, code, body)
        );
        assert_eq!(got.ok(), want, "HTTP {code}");
    }
}
