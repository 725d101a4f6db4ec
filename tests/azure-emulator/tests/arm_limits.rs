//! ARM throttling (token buckets per resource and subscription), injected faults and counters, over HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::arm::*;
use podid_azure_emulator::{ArmConfig, ArmFault, ArmLimits, ArmMatch, Fault, Rate, Target};
use serde_json::{Value, json};

fn none() -> Value {
    json!({"identity": {"type": "None"}})
}

fn with_limits(limits: ArmLimits) -> ArmConfig {
    ArmConfig {
        limits,
        ..ArmConfig::default()
    }
}

#[tokio::test]
async fn the_per_resource_write_bucket_answers_429_with_retry_after_once_empty() {
    let limits = ArmLimits {
        resource_write: Some(Rate::per_minute(4.0, 3.0)),
        ..ArmLimits::unlimited()
    };
    let a = start_arm(with_limits(limits)).await;
    for left in ["2", "1", "0"] {
        let r = a.patch(&a.vm("vm0"), &none()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.header("x-ms-ratelimit-remaining-resource"),
            Some(&*format!("Microsoft.Compute/UpdateVMResource;{left}"))
        );
        a.wait(&r).await;
    }
    let r = a.patch(&a.vm("vm0"), &none()).await;
    assert_eq!(r.status, 429);
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=15).contains(&secs),
        "4 a minute: one token in 15 s, got {secs}"
    );
    let e = &r.json()["error"];
    assert_eq!(e["code"], "OperationNotAllowed");
    assert_eq!(e["details"][0]["code"], "TooManyRequests");
    assert_eq!(a.e.arm_throttled(), 1);
    assert_eq!(
        a.patch(&a.vm("vm1"), &none()).await.status,
        200,
        "another VM has its own bucket"
    );
    assert_eq!(
        a.get(&a.vm("vm0")).await.status,
        200,
        "reads are not writes"
    );
}

#[tokio::test]
async fn the_subscription_write_bucket_spans_every_resource() {
    let limits = ArmLimits {
        subscription_write: Some(Rate::per_minute(1.0, 2.0)),
        ..ArmLimits::unlimited()
    };
    let a = start_arm(with_limits(limits)).await;
    assert_eq!(a.patch(&a.vm("vm0"), &none()).await.status, 200);
    assert_eq!(a.patch(&a.vm("vm1"), &none()).await.status, 200);
    let r = a.patch(&a.vmss("ss0"), &none()).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("x-ms-ratelimit-remaining-resource"),
        Some("Microsoft.Compute/UpdateSubscription;0")
    );
}

#[tokio::test]
async fn the_subscription_read_bucket_throttles_gets() {
    let limits = ArmLimits {
        subscription_read: Some(Rate::per_minute(60.0, 2.0)),
        ..ArmLimits::unlimited()
    };
    let a = start_arm(with_limits(limits)).await;
    assert_eq!(a.get(&a.vm("vm0")).await.status, 200);
    assert_eq!(a.get(&a.vmss("ss0")).await.status, 200);
    let r = a.get(&a.vm("vm1")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn injected_faults_answer_only_the_matching_requests_and_only_so_often() {
    let a = start_arm(quick()).await;
    let vm0 = Target::Vm("vm0".into());
    a.e.inject_arm_faults(
        ArmMatch::patch(vm0.clone()),
        ArmFault::Answer(Fault::status(503).retry_after(7)),
        2,
    );
    a.e.inject_arm_faults(
        ArmMatch::get(Target::ScaleSet("ss0".into())),
        ArmFault::Answer(Fault::status(409)),
        1,
    );
    assert_eq!(a.patch(&a.vm("vm1"), &none()).await.status, 200);
    assert_eq!(a.get(&a.vm("vm0")).await.status, 200);
    for _ in 0..2 {
        let r = a.patch(&a.vm("vm0"), &none()).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("7"));
        assert_eq!(r.json()["error"]["code"], "ServiceUnavailable");
    }
    assert_eq!(a.patch(&a.vm("vm0"), &none()).await.status, 200);
    let r = a.get(&a.vmss("ss0")).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["code"], "AnotherOperationInProgress");
    assert_eq!(a.get(&a.vmss("ss0")).await.status, 200);
    a.e.inject_arm_faults(ArmMatch::any(), ArmFault::Answer(Fault::status(500)), 1);
    a.e.clear_arm_faults();
    assert_eq!(a.get(&a.vm("vm0")).await.status, 200);
}

#[tokio::test]
async fn a_hanging_request_holds_until_the_client_gives_up_and_is_bounded() {
    let a = start_arm(quick()).await;
    let vm0 = Target::Vm("vm0".into());
    a.e.inject_arm_faults(
        ArmMatch::get(vm0.clone()),
        ArmFault::Hang(Duration::from_secs(30)),
        1,
    );
    let gave_up = tokio::time::timeout(Duration::from_millis(300), a.get(&a.vm("vm0"))).await;
    assert!(gave_up.is_err(), "no answer before the client's timeout");
    a.e.inject_arm_faults(
        ArmMatch::get(vm0),
        ArmFault::Hang(Duration::from_millis(200)),
        1,
    );
    let started = Instant::now();
    let r = a.get(&a.vm("vm0")).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["code"], "GatewayTimeout");
}

#[tokio::test]
async fn counters_count_gets_patches_throttles_and_operations_in_flight() {
    let config = ArmConfig {
        vm_latency: Duration::from_millis(200),
        scale_set_latency: Duration::from_millis(300),
        ..quick()
    };
    let a = start_arm(config).await;
    a.get(&a.vm("vm0")).await;
    let p1 = a.patch(&a.vm("vm0"), &none()).await;
    let p2 = a.patch(&a.vmss("ss0"), &none()).await;
    let c = a.e.arm_counters();
    assert_eq!(c.gets[&Target::Vm("vm0".into())], 1);
    assert_eq!(a.e.arm_patches(&Target::ScaleSet("ss0".into())), 1);
    assert_eq!((c.in_flight, c.operations_started), (2, 2));
    a.wait(&p1).await;
    a.wait(&p2).await;
    let c = a.e.arm_counters();
    assert_eq!(
        (c.in_flight, c.max_in_flight, c.operations_succeeded),
        (0, 2, 2)
    );
    a.e.reset_counters();
    assert_eq!(a.e.arm_counters().operations_started, 0);
    assert_eq!(a.e.arm_gets(&Target::Vm("vm0".into())), 0);
}
