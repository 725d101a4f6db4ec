//! IMDS throttling, fault injection and latency over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use podid_azure_emulator::{Emulator, EmulatorConfig, Fault, ImdsLimits, Rate};

/// Slow refill, so a quick burst drains the bucket whatever the machine's speed.
fn slow(burst: f64) -> Rate {
    Rate {
        per_second: 0.1,
        burst,
    }
}

#[tokio::test]
async fn azure_limits_are_the_default() {
    let limits = ImdsLimits::default();
    assert_eq!(limits.identity_rate, Some(Rate::per_second(20.0)));
    assert_eq!(limits.identity_concurrency, Some(5));
    assert_eq!(limits.metadata_rate, Some(Rate::per_second(5.0)));
    let e = Emulator::start(EmulatorConfig::loopback(world()))
        .await
        .unwrap();
    e.assign_to_vm("vm0", "id-a").unwrap();
    let addr = e.imds_addr("vm0").unwrap();
    // Bounded loop until the first 429: at least the bucket's 20 pass
    // first, whatever the machine's speed (refills only add to that).
    let mut passed = 0;
    let mut throttled = None;
    for _ in 0..200 {
        let r = imds_token(addr, "").await;
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
        passed += 1;
    }
    let throttled = throttled.expect("no 429 within 200 requests");
    throttled.assert_imds_error(429, "too_many_requests");
    assert!(throttled.header("retry-after").is_some());
    assert!(passed >= 20, "{passed}");
}

#[tokio::test]
async fn drained_bucket_answers_429_with_retry_after() {
    let e = start().await;
    e.set_imds_limits(ImdsLimits {
        identity_rate: Some(slow(3.0)),
        ..ImdsLimits::unlimited()
    });
    e.assign_to_vm("vm0", "id-a").unwrap();
    let addr = e.imds_addr("vm0").unwrap();
    for _ in 0..3 {
        assert_eq!(imds_token(addr, "").await.status, 200);
    }
    let r = imds_token(addr, "").await;
    r.assert_imds_error(429, "too_many_requests");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    // Other VMs have their own bucket.
    e.assign_to_vm("vm1", "id-a").unwrap();
    assert_eq!(
        imds_token(e.imds_addr("vm1").unwrap(), "").await.status,
        200
    );
    assert_eq!(e.imds_token_requests("vm0"), 4);
    assert_eq!(e.imds_tokens_issued("vm0", "id-a"), 3);
}

#[tokio::test]
async fn concurrency_beyond_the_cap_answers_429() {
    let e = start().await;
    e.set_imds_limits(ImdsLimits {
        identity_concurrency: Some(5),
        ..ImdsLimits::unlimited()
    });
    e.assign_to_vm("vm0", "id-a").unwrap();
    e.set_imds_latency("vm0", Duration::from_millis(500));
    let addr = e.imds_addr("vm0").unwrap();
    let calls: Vec<_> = (0..7).map(|_| tokio::spawn(imds_token(addr, ""))).collect();
    let mut statuses = Vec::new();
    for call in calls {
        let r = call.await.unwrap();
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
        }
        statuses.push(r.status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    // Slots are given back: the next request goes through.
    e.set_imds_latency("vm0", Duration::ZERO);
    assert_eq!(imds_token(addr, "").await.status, 200);
}

#[tokio::test]
async fn unlimited_limits_let_bursts_through() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    let addr = e.imds_addr("vm0").unwrap();
    for _ in 0..40 {
        assert_eq!(imds_token(addr, "").await.status, 200);
    }
}

#[tokio::test]
async fn injected_faults_answer_the_next_requests_then_stop() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    let addr = e.imds_addr("vm0").unwrap();
    e.inject_imds_faults("vm0", Fault::status(503).retry_after(7), 2);
    for _ in 0..2 {
        let r = imds_token(addr, "").await;
        r.assert_imds_error(503, "service_unavailable");
        assert_eq!(r.header("retry-after"), Some("7"));
    }
    assert_eq!(imds_token(addr, "").await.status, 200);
    for (status, error) in [
        (404, "not_found"),
        (410, "gone"),
        (429, "too_many_requests"),
        (500, "unknown_error"),
    ] {
        e.inject_imds_faults("vm0", Fault::status(status), 1);
        let r = imds_token(addr, "").await;
        r.assert_imds_error(status, error);
        assert!(r.header("retry-after").is_none());
    }
    e.inject_imds_faults("vm0", Fault::status(500), 3);
    e.clear_imds_faults("vm0");
    assert_eq!(imds_token(addr, "").await.status, 200);
    assert_eq!(e.imds_token_requests("vm0"), 8);
    assert_eq!(e.imds_tokens_issued("vm0", "id-a"), 2);
}

#[tokio::test]
async fn faults_apply_only_to_their_vm() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    e.assign_to_vm("vm1", "id-a").unwrap();
    e.inject_imds_faults("vm0", Fault::status(500), 1);
    assert_eq!(
        imds_token(e.imds_addr("vm1").unwrap(), "").await.status,
        200
    );
    assert_eq!(
        imds_token(e.imds_addr("vm0").unwrap(), "").await.status,
        500
    );
}

#[tokio::test]
async fn latency_delays_token_answers() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    e.set_imds_latency("vm0", Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(
        imds_token(e.imds_addr("vm0").unwrap(), "").await.status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn metadata_paths_have_their_own_bucket() {
    let e = start().await;
    e.assign_to_vm("vm0", "id-a").unwrap();
    e.set_imds_limits(ImdsLimits {
        metadata_rate: Some(slow(2.0)),
        ..ImdsLimits::unlimited()
    });
    let addr = e.imds_addr("vm0").unwrap();
    let instance = "/metadata/instance?api-version=2021-02-01";
    assert_eq!(imds_get(addr, instance).await.status, 200);
    assert_eq!(imds_get(addr, instance).await.status, 200);
    let r = imds_get(addr, instance).await;
    r.assert_imds_error(429, "too_many_requests");
    assert!(r.header("retry-after").is_some());
    assert_eq!(imds_token(addr, "").await.status, 200);
}
