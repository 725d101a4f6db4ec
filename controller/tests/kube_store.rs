//! The ownership ConfigMap against a mock API server: what is read, what is written, and a 409 retried on a fresh read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kube_support;

use std::collections::BTreeMap;

use http::Method;
use kube_support::{client, expect, status};
use podid_controller::kube::{ConfigMapStore, key_of};
use podid_controller::plan::{OwnedIdentity, Target, TargetOwnership, Timestamp};
use podid_controller::seams::OwnershipStore;
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/podid-system/configmaps/podid-state";
const CMS: &str = "/api/v1/namespaces/podid-system/configmaps";
const ID: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/A";

fn target(name: &str) -> Target {
    Target::Vmss {
        subscription: "s".into(),
        resource_group: "mc_g".into(),
        name: name.into(),
    }
}

fn records(since: Option<i64>) -> TargetOwnership {
    BTreeMap::from([(
        ID.to_ascii_lowercase(),
        OwnedIdentity {
            resource_id: ID.into(),
            client_id: Some("c".into()),
            unneeded_since: since.map(Timestamp::from_unix_secs),
        },
    )])
}

fn entry(t: &Target, r: &TargetOwnership) -> String {
    serde_json::to_string(&json!({"target": t.arm_id(), "identities": r})).unwrap()
}

fn configmap(rv: &str, data: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "podid-state", "namespace": "podid-system", "resourceVersion": rv},
        "data": data,
    })
}

fn store() -> (ConfigMapStore, kube_support::ApiHandle) {
    let (client, handle) = client();
    (
        ConfigMapStore::new(client, "podid-system", "podid-state"),
        handle,
    )
}

#[tokio::test]
async fn load_reads_every_target_from_the_configmap_by_name() {
    let (store, mut api) = store();
    let data = BTreeMap::from([
        (key_of(&target("a")), entry(&target("a"), &records(None))),
        (key_of(&target("b")), entry(&target("b"), &records(Some(7)))),
    ]);
    let (loaded, _) = tokio::join!(
        store.load(),
        expect(&mut api, Method::GET, CM, 200, configmap("5", &data))
    );
    let loaded = loaded.unwrap();
    assert_eq!(loaded[&target("a")], records(None));
    assert_eq!(loaded[&target("b")], records(Some(7)));
}

#[tokio::test]
async fn an_absent_configmap_loads_as_no_records() {
    let (store, mut api) = store();
    let (loaded, _) = tokio::join!(
        store.load(),
        expect(&mut api, Method::GET, CM, 404, status(404, "NotFound"))
    );
    assert!(loaded.unwrap().is_empty());
}

#[tokio::test]
async fn the_first_save_creates_the_configmap() {
    let (store, mut api) = store();
    let server = async {
        expect(&mut api, Method::GET, CM, 404, status(404, "NotFound")).await;
        let created = BTreeMap::from([(key_of(&target("a")), entry(&target("a"), &records(None)))]);
        expect(&mut api, Method::POST, CMS, 201, configmap("1", &created)).await
    };
    let (a, r) = (target("a"), records(None));
    let (saved, seen) = tokio::join!(store.save(&a, &r), server);
    saved.unwrap();
    assert_eq!(seen.body["metadata"]["name"], "podid-state");
    let value = seen.body["data"][key_of(&target("a"))].as_str().unwrap();
    let parsed: Value = serde_json::from_str(value).unwrap();
    assert_eq!(
        parsed,
        json!({"target": target("a").arm_id(), "identities": {
            ID.to_ascii_lowercase(): {"resourceID": ID, "clientID": "c"}
        }})
    );
}

#[tokio::test]
async fn a_conflicting_save_rereads_and_keeps_the_concurrent_change() {
    let (store, mut api) = store();
    let (a, b) = (target("a"), target("b"));
    let server = async {
        let old = BTreeMap::new();
        expect(&mut api, Method::GET, CM, 200, configmap("5", &old)).await;
        let first = expect(&mut api, Method::PUT, CM, 409, status(409, "Conflict")).await;
        // Someone wrote b's records meanwhile.
        let newer = BTreeMap::from([(key_of(&b), entry(&b, &records(None)))]);
        expect(&mut api, Method::GET, CM, 200, configmap("6", &newer)).await;
        let second = expect(&mut api, Method::PUT, CM, 200, configmap("7", &newer)).await;
        (first, second)
    };
    let r = records(Some(9));
    let (saved, (first, second)) = tokio::join!(store.save(&a, &r), server);
    saved.unwrap();
    assert_eq!(first.body["metadata"]["resourceVersion"], "5");
    assert_eq!(second.body["metadata"]["resourceVersion"], "6");
    let data = second.body["data"].as_object().unwrap();
    assert!(data.contains_key(&key_of(&b)), "b's records survive");
    assert!(data.contains_key(&key_of(&a)));
}

#[tokio::test]
async fn saving_no_records_removes_the_key_and_an_unchanged_save_writes_nothing() {
    let (store, mut api) = store();
    let a = target("a");
    let data = BTreeMap::from([(key_of(&a), entry(&a, &records(None)))]);
    let server = async {
        expect(&mut api, Method::GET, CM, 200, configmap("5", &data)).await;
        expect(
            &mut api,
            Method::PUT,
            CM,
            200,
            configmap("6", &BTreeMap::new()),
        )
        .await
    };
    let none = TargetOwnership::new();
    let (saved, put) = tokio::join!(store.save(&a, &none), server);
    saved.unwrap();
    assert_eq!(put.body["data"], json!({}));
    // Same records again: one read, no write.
    let r = records(None);
    let (saved, _) = tokio::join!(
        store.save(&a, &r),
        expect(&mut api, Method::GET, CM, 200, configmap("6", &data))
    );
    saved.unwrap();
}

#[tokio::test]
async fn a_save_that_keeps_conflicting_fails_after_five_attempts() {
    let (store, mut api) = store();
    let server = async {
        for _ in 0..5 {
            expect(
                &mut api,
                Method::GET,
                CM,
                200,
                configmap("5", &BTreeMap::new()),
            )
            .await;
            expect(&mut api, Method::PUT, CM, 409, status(409, "Conflict")).await;
        }
    };
    let (a, r) = (target("a"), records(None));
    let (saved, ()) = tokio::join!(store.save(&a, &r), server);
    assert!(saved.unwrap_err().to_string().contains("5 attempts"));
}
