//! Pod reports against a mock API server: the condition patch (pods/status) and the Events (events.k8s.io/v1), paths and bodies; and the status task end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kube_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use kube_support::{client, expect, status};
use podid_controller::kube::{
    ConditionState, KubePodSink, PodEvent, PodSink, PodWrite, PodWriteError, StatusFeed, reasons,
};
use podid_controller::plan::{Desired, IdentityChange, PodKey, PodNeed, Target, WantedIdentity};
use podid_controller::seams::Report;
use serde_json::json;

const ID_A: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/A";
const POD_STATUS: &str = "/api/v1/namespaces/apps/pods/web-1/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/apps/events";

fn pod() -> PodKey {
    PodKey {
        namespace: "apps".into(),
        name: "web-1".into(),
    }
}

fn write(transition: bool) -> PodWrite {
    PodWrite {
        pod: pod(),
        uid: "uid-1".into(),
        condition: Some(ConditionState {
            status: "True".into(),
            reason: reasons::ASSIGNED.into(),
            message: "a assigned to /x".into(),
        }),
        transition,
        events: vec![PodEvent {
            warning: false,
            reason: "IdentityAssigned",
            note: format!("AzureIdentity \"a\" ({ID_A}) is assigned to /x"),
        }],
    }
}

#[tokio::test]
async fn a_condition_is_a_strategic_merge_patch_of_pod_status_guarded_by_the_uid() {
    let (client, mut api) = client();
    let sink = KubePodSink::new(client, "podid-controller-0".into());
    let server = async {
        let patch = expect(&mut api, Method::PATCH, POD_STATUS, 200, json!({})).await;
        let event = expect(&mut api, Method::POST, EVENTS, 201, json!({})).await;
        (patch, event)
    };
    let w = write(true);
    let (written, (patch, event)) = tokio::join!(sink.write(&w), server);
    written.unwrap();
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(patch.body["metadata"], json!({"uid": "uid-1"}));
    let condition = &patch.body["status"]["conditions"][0];
    assert_eq!(condition["type"], "podid.io/IdentityAssigned");
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "IdentitiesAssigned");
    assert_eq!(condition["message"], "a assigned to /x");
    assert!(
        condition["lastTransitionTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        patch.body["status"]["conditions"].as_array().unwrap().len(),
        1
    );

    assert_eq!(event.body["reason"], "IdentityAssigned");
    assert_eq!(event.body["type"], "Normal");
    assert_eq!(event.body["action"], "AssignIdentity");
    assert!(event.body["note"].as_str().unwrap().contains(ID_A));
    assert_eq!(
        event.body["regarding"],
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "apps", "name": "web-1", "uid": "uid-1"})
    );
    assert_eq!(event.body["reportingController"], "podid.io/controller");
    assert_eq!(event.body["reportingInstance"], "podid-controller-0");
}

#[tokio::test]
async fn an_unchanged_status_keeps_its_transition_time() {
    let (client, mut api) = client();
    let sink = KubePodSink::new(client, "r".into());
    let mut w = write(false);
    w.events.clear();
    let (written, patch) = tokio::join!(
        sink.write(&w),
        expect(&mut api, Method::PATCH, POD_STATUS, 200, json!({}))
    );
    written.unwrap();
    assert!(
        patch.body["status"]["conditions"][0]
            .get("lastTransitionTime")
            .is_none()
    );
}

#[tokio::test]
async fn a_replaced_pod_is_recognised_as_gone() {
    let (client, mut api) = client();
    let sink = KubePodSink::new(client, "r".into());
    let w = write(true);
    let (written, _) = tokio::join!(
        sink.write(&w),
        expect(
            &mut api,
            Method::PATCH,
            POD_STATUS,
            422,
            status(422, "Invalid")
        )
    );
    let err = written.unwrap_err();
    assert!(err.pod_is_gone());
    assert_eq!(err.kind(), "condition");
}

/// Records writes instead of sending them.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<PodWrite>>>);

impl PodSink for Recorded {
    async fn write(&self, write: &PodWrite) -> Result<(), PodWriteError> {
        self.0.lock().unwrap().push(write.clone());
        Ok(())
    }
}

fn target() -> Target {
    Target::Vm {
        subscription: "s".into(),
        resource_group: "g".into(),
        name: "vm1".into(),
    }
}

fn desired() -> Desired {
    Desired {
        targets: BTreeMap::new(),
        pods: vec![PodNeed {
            pod: pod(),
            uid: "uid-1".into(),
            node: "vm1".into(),
            target: Some(target()),
            identities: vec![WantedIdentity {
                name: "a".into(),
                resource_id: ID_A.into(),
                canonical: ID_A.to_ascii_lowercase(),
                client_id: "c".into(),
            }],
            problems: vec![],
        }],
    }
}

impl Recorded {
    /// Waits until `n` writes were made.
    async fn count(&self, n: usize) {
        for _ in 0..500 {
            if self.0.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} writes, got {:?}", self.0.lock().unwrap());
    }
}

#[tokio::test]
async fn the_status_task_tells_a_pod_once_its_identity_is_applied_and_again_when_it_fails() {
    let sink = Recorded::default();
    let (feed, task) = StatusFeed::new(sink.clone());
    let task = tokio::spawn(task);
    feed.pass(Arc::new(desired()), BTreeMap::new());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        sink.0.lock().unwrap().is_empty(),
        "nothing known yet: nothing written"
    );
    feed.report(Report::Applied {
        target: target(),
        changes: vec![IdentityChange::add(ID_A, Some("c".into()))],
    });
    sink.count(1).await;
    {
        let writes = sink.0.lock().unwrap();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].condition.as_ref().unwrap().status, "True");
        assert_eq!(writes[0].events[0].reason, "IdentityAssigned");
        assert!(writes[0].events[0].note.contains("virtualMachines/vm1"));
    }
    feed.report(Report::Applied {
        target: target(),
        changes: vec![IdentityChange::remove(ID_A)],
    });
    feed.report(Report::IdentityFailed {
        target: target(),
        identities: vec![ID_A.into()],
        reason: "LinkedAuthorizationFailed".into(),
    });
    sink.count(2).await;
    {
        let writes = sink.0.lock().unwrap();
        assert_eq!(writes.len(), 2);
        let c = writes[1].condition.as_ref().unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "AssignmentFailed")
        );
        assert!(writes[1].events[0].warning);
        assert_eq!(writes[1].events[0].reason, "IdentityAssignmentFailed");
    }
    drop(feed);
    task.await.unwrap();
}
