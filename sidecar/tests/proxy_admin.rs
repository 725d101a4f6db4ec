//! The admin listener: `/live`, `/ready` (with its timeout) and `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use std::net::SocketAddr;
use std::time::Duration;

use proxy_support::*;

#[tokio::test]
async fn live_answers_at_once() {
    let world = World::start().await;
    let proxy = Running::start(world.config(vec![world.msi("id-a")])).await;
    let reply = get(proxy.admin, "/live", &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn ready_waits_for_the_default_identitys_token() {
    let world = World::start().await;
    world.emulator.unassign_from_vm(VM, "id-a").unwrap();
    let proxy = Running::start(world.config(vec![world.msi("id-a")])).await;
    get(proxy.admin, "/ready", &[])
        .await
        .assert_imds_error(503, "not_ready");
    tokio::time::sleep(Duration::from_millis(300)).await;
    get(proxy.admin, "/ready", &[])
        .await
        .assert_imds_error(503, "not_ready");
    world.emulator.assign_to_vm(VM, "id-a").unwrap();
    proxy.wait_ready().await;
    // The warm-up's token is the management one, cached for the app.
    world.emulator.reset_counters();
    let mgmt = "https://management.azure.com/";
    proxy.token(mgmt, "").await.assert_token(mgmt);
    assert_eq!(world.emulator.imds_token_requests(VM), 0);
}

#[tokio::test]
async fn ready_gives_up_waiting_after_the_ready_timeout() {
    let world = World::start().await;
    // Nothing listens there: IMDS is down.
    let closed: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = world.config(vec![world.msi("id-a")]);
    config.imds_endpoint = closed;
    config.ready_timeout = Duration::from_secs(2);
    let proxy = Running::start(config).await;
    get(proxy.admin, "/ready", &[])
        .await
        .assert_imds_error(503, "not_ready");
    assert!(
        eventually(20, async || get(proxy.admin, "/ready", &[]).await.status
            == 200)
        .await
    );
    proxy
        .token(VAULT, "")
        .await
        .assert_imds_error(502, "bad_gateway");
}

#[tokio::test]
async fn a_pod_without_identities_is_ready_at_once() {
    let world = World::start().await;
    let proxy = Running::start(world.config(vec![])).await;
    assert!(
        eventually(5, async || get(proxy.admin, "/ready", &[]).await.status
            == 200)
        .await
    );
}

#[tokio::test]
async fn metrics_count_requests_cache_lookups_and_upstream_calls() {
    let world = World::start().await;
    let proxy = Running::ready(world.config(vec![world.msi("id-a")])).await;
    proxy.token(VAULT, "").await.assert_token(VAULT);
    proxy.token(VAULT, "").await.assert_token(VAULT);
    proxy
        .token(VAULT, "&client_id=nobody")
        .await
        .assert_imds_error(403, "forbidden");
    get(proxy.addr, "/metadata/identity/oauth2/token", &[])
        .await
        .assert_imds_error(400, "invalid_request");
    let reply = get(proxy.admin, "/metrics", &[]).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .contains("openmetrics-text")
    );
    for needle in [
        r#"podid_proxy_token_requests_total{outcome="ok"} 2"#,
        r#"podid_proxy_token_requests_total{outcome="forbidden"} 1"#,
        r#"podid_proxy_token_requests_total{outcome="bad_request"} 1"#,
        r#"podid_proxy_token_cache_lookups_total{result="hit"} 1"#,
        r#"podid_proxy_token_cache_lookups_total{result="miss"} 1"#,
        r#"podid_proxy_upstream_requests_total{kind="imds_token",class="2xx"} 2"#,
        r#"podid_proxy_upstream_duration_seconds_count{kind="imds_token"} 2"#,
    ] {
        assert!(
            reply.body.contains(needle),
            "{needle} not in\n{}",
            reply.body
        );
    }
    assert!(!reply.body.contains("eyJ"), "no token in metrics");
}
