//! Upstream behaviour: identities not yet assigned, throttling, failures, service principals, forwarded paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use std::time::{Duration, Instant};

use podid_azure_emulator::Fault;
use proxy_support::*;

#[tokio::test]
async fn an_identity_not_yet_on_the_node_gets_503_then_its_token_once_assigned() {
    let world = World::start().await;
    let proxy = Running::ready(world.config(vec![world.msi("id-a"), world.msi("id-b")])).await;
    let b = format!("&client_id={}", world.client_id("id-b"));
    let started = Instant::now();
    let reply = proxy.token(VAULT, &b).await;
    reply.assert_imds_error(503, "temporarily_unavailable");
    assert_eq!(reply.header("retry-after"), Some("5"));
    // Not retried: IMDS's "Identity not found" is an answer, not a hiccup.
    assert!(started.elapsed() < Duration::from_secs(2));
    world.emulator.assign_to_vm(VM, "id-b").unwrap();
    let claims = proxy.token(VAULT, &b).await.assert_token(VAULT);
    assert_eq!(claims["appid"], world.client_id("id-b"));
}

#[tokio::test]
async fn a_throttled_upstream_is_retried_after_its_retry_after() {
    let world = World::start().await;
    let proxy = Running::ready(world.config(vec![world.msi("id-a")])).await;
    world.emulator.reset_counters();
    world
        .emulator
        .inject_imds_faults(VM, Fault::status(429).retry_after(1), 1);
    let started = Instant::now();
    proxy.token(VAULT, "").await.assert_token(VAULT);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(world.emulator.imds_token_requests(VM), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_is_passed_on_at_once() {
    let world = World::start().await;
    let proxy = Running::ready(world.config(vec![world.msi("id-a")])).await;
    world
        .emulator
        .inject_imds_faults(VM, Fault::status(429).retry_after(30), 5);
    let started = Instant::now();
    let reply = proxy.token(VAULT, "").await;
    reply.assert_imds_error(429, "too_many_requests");
    assert_eq!(reply.header("retry-after"), Some("30"));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_failing_upstream_gives_502_within_the_deadline() {
    let world = World::start().await;
    let proxy = Running::ready(world.config(vec![world.msi("id-a")])).await;
    world.emulator.reset_counters();
    world
        .emulator
        .inject_imds_faults(VM, Fault::status(500), 1_000);
    let started = Instant::now();
    proxy
        .token(VAULT, "")
        .await
        .assert_imds_error(502, "bad_gateway");
    // The test configuration's deadline is 3 s.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(world.emulator.imds_token_requests(VM) >= 2, "retried");
}

#[tokio::test]
async fn a_hanging_upstream_gives_504() {
    let world = World::start().await;
    let proxy = Running::ready(world.config(vec![world.msi("id-a")])).await;
    world.emulator.set_imds_latency(VM, Duration::from_secs(30));
    let started = Instant::now();
    proxy
        .token(VAULT, "&bypass_cache=true")
        .await
        .assert_imds_error(504, "gateway_timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_service_principal_with_a_secret_gets_tokens_from_azure_ad_over_https() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clientsecret"), format!("{SECRET}\n")).unwrap();
    let sp = world.sp("sp", 1, SECRET_CLIENT, dir.path());
    let proxy = Running::ready(world.config(vec![world.msi("id-a"), sp])).await;
    let extra = format!("&client_id={}", SECRET_CLIENT.to_uppercase());
    let claims = proxy.token(VAULT, &extra).await.assert_token(VAULT);
    assert_eq!(
        (claims["appid"].as_str(), claims["aud"].as_str()),
        (Some(SECRET_CLIENT), Some(VAULT))
    );
    // `https://management.azure.com/` keeps its slash: scope `…//.default`.
    let mgmt = "https://management.azure.com/";
    assert_eq!(
        proxy.token(mgmt, &extra).await.assert_token(mgmt)["aud"],
        mgmt
    );
    assert_eq!(world.emulator.aad_token_requests(SECRET_CLIENT), 2);
    proxy.token(VAULT, &extra).await.assert_token(VAULT);
    assert_eq!(
        world.emulator.aad_token_requests(SECRET_CLIENT),
        2,
        "cached"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_azure_ads_verdict_not_a_retry() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clientsecret"), "wrong").unwrap();
    let proxy =
        Running::start(world.config(vec![world.sp("sp", 1, SECRET_CLIENT, dir.path())])).await;
    let v = proxy
        .token(VAULT, "&bypass_cache=true")
        .await
        .assert_imds_error(401, "invalid_client");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("AADSTS7000215"),
        "{v}"
    );
}

#[tokio::test]
async fn a_service_principal_with_a_certificate_signs_its_assertion() {
    let world = World::start().await;
    for key in [SP_KEY, SP_KEY_PKCS1] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("certificate"), format!("{SP_CERT}{key}")).unwrap();
        let proxy =
            Running::ready(world.config(vec![world.sp("cert", 2, CERT_CLIENT, dir.path())])).await;
        let claims = proxy.token(VAULT, "").await.assert_token(VAULT);
        assert_eq!(claims["appid"], CERT_CLIENT);
    }
}

#[tokio::test]
async fn a_pkcs12_certificate_is_refused_with_a_clear_error() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("certificate"),
        [0x30, 0x82, 0x09, 0x99, 0x02, 0x01, 0x03],
    )
    .unwrap();
    std::fs::write(dir.path().join("password"), "pw").unwrap();
    let proxy =
        Running::start(world.config(vec![world.sp("cert", 2, CERT_CLIENT, dir.path())])).await;
    let v = proxy
        .token(VAULT, "")
        .await
        .assert_imds_error(500, "credential_unavailable");
    assert!(
        v["error_description"].as_str().unwrap().contains("PKCS#12"),
        "{v}"
    );
    assert_eq!(world.emulator.aad_token_requests(CERT_CLIENT), 0);
}

#[tokio::test]
async fn other_imds_paths_are_forwarded_with_their_query() {
    let world = World::start().await;
    let proxy = Running::start(world.config(vec![world.msi("id-a")])).await;
    let reply = get(
        proxy.addr,
        "/metadata/instance?api-version=2021-02-01",
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(reply.json()["compute"]["name"], VM);
    let text = get(
        proxy.addr,
        "/metadata/instance/compute/name?api-version=2021-02-01&format=text",
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!((text.status, text.body.as_str()), (200, VM));
    // IMDS's own errors come back as IMDS sent them.
    let missing = get(proxy.addr, "/metadata/instance", &[("Metadata", "true")]).await;
    assert_eq!(missing.status, 400, "{missing:?}");
    // The header rules apply before forwarding.
    get(proxy.addr, "/metadata/instance?api-version=2021-02-01", &[])
        .await
        .assert_imds_error(400, "invalid_request");
}

#[tokio::test]
async fn other_imds_paths_can_be_blocked() {
    let world = World::start().await;
    let mut config = world.config(vec![world.msi("id-a")]);
    config.block_other_paths = true;
    let proxy = Running::ready(config).await;
    get(
        proxy.addr,
        "/metadata/instance?api-version=2021-02-01",
        &[("Metadata", "true")],
    )
    .await
    .assert_imds_error(403, "forbidden");
    proxy.token(VAULT, "").await.assert_token(VAULT);
}
