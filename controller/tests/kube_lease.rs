//! Leader election against a mock API server: the exact Lease requests for acquiring, renewing, stepping down, taking over an expired Lease and releasing at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kube_support;

use std::time::Duration;

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube_support::{ApiHandle, Seen, client, expect, status};
use podid_controller::kube::{Leadership, LeaseSettings};
use serde_json::{Value, json};
use tokio::sync::watch;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/podid-system/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/podid-system/leases/podid-controller";
const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/strategic-merge-patch+json";

fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        namespace: "podid-system".into(),
        name: "podid-controller".into(),
        identity: identity.into(),
        // Renew 1 s after acquiring: the test sees a renewal quickly.
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(100),
    }
}

fn time(ago: i64) -> Value {
    serde_json::to_value(MicroTime(Timestamp::now() - SignedDuration::from_secs(ago))).unwrap()
}

fn lease(spec: Value) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "podid-controller", "namespace": "podid-system", "resourceVersion": "1"},
        "spec": spec,
    })
}

fn free() -> Value {
    lease(json!({}))
}

fn held(holder: &str, renewed_ago: i64, transitions: i32) -> Value {
    lease(json!({
        "holderIdentity": holder, "acquireTime": time(renewed_ago), "renewTime": time(renewed_ago),
        "leaseDurationSeconds": 3, "leaseTransitions": transitions,
    }))
}

async fn wait(leading: &mut watch::Receiver<bool>, want: bool) {
    tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| *l == want))
        .await
        .expect("leadership changes in time")
        .unwrap();
}

/// The requests that take a free Lease: read, read again, apply holder, bump transitions, read back.
/// Answers the next `n` requests, each of which must be a GET of the Lease,
/// with `lease` (kube-lease-manager reads it more than once per step).
async fn expect_reads(api: &mut ApiHandle, n: usize, lease: Value) {
    for _ in 0..n {
        expect(api, Method::GET, LEASE, 200, lease.clone()).await;
    }
}

async fn take_free_lease(api: &mut ApiHandle, me: &str, transitions: i64) -> (Seen, Seen) {
    expect_reads(api, 2, free()).await;
    let apply = expect(api, Method::PATCH, LEASE, 200, held(me, 0, 0)).await;
    let bump = expect(api, Method::PATCH, LEASE, 200, held(me, 0, 1)).await;
    expect(api, Method::GET, LEASE, 200, held(me, 0, 1)).await;
    assert_eq!(apply.content_type.as_deref(), Some(APPLY));
    assert_eq!(
        apply.param("fieldManager"),
        Some(format!("kube-lease-manager-{me}").as_str())
    );
    assert_eq!(apply.body["spec"]["holderIdentity"], me);
    assert_eq!(apply.body["spec"]["leaseDurationSeconds"], 3);
    assert_eq!(bump.content_type.as_deref(), Some(MERGE));
    assert_eq!(bump.body["spec"], json!({"leaseTransitions": transitions}));
    (apply, bump)
}

/// Asserts a release: a merge patch clearing the holder, then a read.
async fn released(api: &mut ApiHandle) {
    let release = expect(api, Method::PATCH, LEASE, 200, free()).await;
    assert_eq!(release.content_type.as_deref(), Some(MERGE));
    assert_eq!(
        release.body["spec"],
        json!({"acquireTime": null, "renewTime": null, "holderIdentity": null, "leaseDurationSeconds": null})
    );
    expect(api, Method::GET, LEASE, 200, free()).await;
}

#[tokio::test]
async fn a_replica_creates_the_lease_acquires_it_renews_it_and_releases_it_at_shutdown() {
    let (client, mut api) = client();
    let leadership = Leadership::start(client, settings("a")).unwrap();
    let mut leading = leadership.subscribe();
    expect(&mut api, Method::GET, LEASE, 404, status(404, "NotFound")).await;
    let create = expect(&mut api, Method::POST, LEASES, 201, free()).await;
    assert_eq!(create.body["metadata"]["name"], "podid-controller");
    assert!(!leadership.is_leading(), "not before the Lease names it");
    take_free_lease(&mut api, "a", 1).await;
    wait(&mut leading, true).await;

    let renew = expect(&mut api, Method::PATCH, LEASE, 200, held("a", 0, 1)).await;
    assert_eq!(renew.content_type.as_deref(), Some(MERGE));
    assert!(renew.body["spec"]["renewTime"].is_string());
    assert!(
        renew.body["spec"].get("holderIdentity").is_none(),
        "a renewal only renews"
    );
    expect(&mut api, Method::GET, LEASE, 200, held("a", 0, 1)).await;
    assert!(leadership.is_leading());

    let shutdown = tokio::spawn(leadership.shutdown(Duration::from_secs(10)));
    released(&mut api).await;
    shutdown.await.unwrap();
    assert!(!*leading.borrow());
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_leading_at_once_releases_and_contests_again() {
    let (client, mut api) = client();
    let leadership = Leadership::start(client, settings("a")).unwrap();
    let mut leading = leadership.subscribe();
    expect(&mut api, Method::GET, LEASE, 200, free()).await;
    take_free_lease(&mut api, "a", 1).await;
    wait(&mut leading, true).await;

    expect(
        &mut api,
        Method::PATCH,
        LEASE,
        500,
        status(500, "InternalError"),
    )
    .await;
    wait(&mut leading, false).await;
    released(&mut api).await;
    // The manager learns it no longer holds the Lease, then contests it afresh.
    expect(&mut api, Method::GET, LEASE, 200, free()).await;
    take_free_lease(&mut api, "a", 1).await;
    wait(&mut leading, true).await;
    drop(leadership);
}

#[tokio::test]
async fn a_standby_takes_over_a_lease_its_holder_stopped_renewing() {
    let (client, mut api) = client();
    let leadership = Leadership::start(client, settings("b")).unwrap();
    let mut leading = leadership.subscribe();
    // The Lease exists (no create) and names "a", renewed 10 s ago for 3 s.
    expect_reads(&mut api, 3, held("a", 10, 1)).await;
    assert!(!leadership.is_leading());
    // Expired: cleared, then taken.
    let clear = expect(
        &mut api,
        Method::PATCH,
        LEASE,
        200,
        lease(json!({"leaseTransitions": 1})),
    )
    .await;
    assert_eq!(clear.body["spec"]["holderIdentity"], Value::Null);
    expect_reads(&mut api, 3, lease(json!({"leaseTransitions": 1}))).await;
    let apply = expect(&mut api, Method::PATCH, LEASE, 200, held("b", 0, 1)).await;
    assert_eq!(apply.body["spec"]["holderIdentity"], "b");
    let bump = expect(&mut api, Method::PATCH, LEASE, 200, held("b", 0, 2)).await;
    assert_eq!(bump.body["spec"], json!({"leaseTransitions": 2}));
    expect(&mut api, Method::GET, LEASE, 200, held("b", 0, 2)).await;
    wait(&mut leading, true).await;
    drop(leadership);
}

#[tokio::test]
async fn unusable_settings_are_refused_before_any_request() {
    let (client, _api) = client();
    let mut s = settings("a");
    s.renew_deadline = s.lease_duration;
    assert!(Leadership::start(client, s).is_err());
}
