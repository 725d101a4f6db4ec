//! The token endpoint against the emulated IMDS: which identity, which errors, and the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use std::time::{Duration, Instant};

use podid_azure_emulator::decode_claims;
use proxy_support::*;

const MGMT: &str = "https://management.azure.com/";

/// id-a (default) and id-b bound; id-b assigned to the node too; counters reset.
async fn two_identities() -> (World, Running) {
    let world = World::start().await;
    world.emulator.assign_to_vm(VM, "id-b").unwrap();
    let proxy = Running::ready(world.config(vec![world.msi("id-a"), world.msi("id-b")])).await;
    world.emulator.reset_counters();
    (world, proxy)
}

#[tokio::test]
async fn no_selector_gets_the_default_identity() {
    let (world, proxy) = two_identities().await;
    let reply = proxy.token(VAULT, "").await;
    let claims = reply.assert_token(VAULT);
    assert_eq!(claims["appid"], world.client_id("id-a"));
    assert_eq!(claims["aud"], VAULT);
    let v = reply.json();
    let expires_in: u64 = v["expires_in"].as_str().unwrap().parse().unwrap();
    let expires_on: u64 = v["expires_on"].as_str().unwrap().parse().unwrap();
    assert!(expires_in > 80_000 && expires_in <= 86_400, "{v}");
    assert_eq!(expires_on, claims["exp"].as_u64().unwrap());
}

#[tokio::test]
async fn the_second_identity_is_reachable_by_every_selector_in_any_case() {
    let (world, proxy) = two_identities().await;
    let b = world.client_id("id-b");
    let selectors = [
        format!("&client_id={b}"),
        format!("&client_id={}", b.to_uppercase()),
        format!("&msi_res_id={}", enc(&world.resource_id("id-b"))),
        format!(
            "&mi_res_id={}",
            enc(&world.resource_id("id-b").to_uppercase())
        ),
        format!("&object_id={}", world.object_id("id-b")),
        format!("&object_id={}", world.object_id("id-b").to_uppercase()),
    ];
    for extra in selectors {
        let claims = proxy.token(VAULT, &extra).await.assert_token(VAULT);
        assert_eq!(claims["appid"], b, "{extra}");
    }
    // One fetch for id-b, shared by every selector; the object id was learned from it.
    assert_eq!(world.emulator.imds_tokens_issued(VM, "id-b"), 1);
}

#[tokio::test]
async fn identities_not_bound_to_the_pod_are_forbidden_without_asking_imds() {
    let (world, proxy) = two_identities().await;
    let c = "id-c";
    for extra in [
        format!("&client_id={}", world.client_id(c)),
        format!("&msi_res_id={}", enc(&world.resource_id(c))),
        format!("&mi_res_id={}", enc(&world.resource_id(c))),
        format!("&object_id={}", world.object_id(c)),
    ] {
        let v = proxy
            .token(VAULT, &extra)
            .await
            .assert_imds_error(403, "forbidden");
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .contains("not bound"),
            "{v}"
        );
    }
    // id-c is on the node (another pod uses it) but was never asked for; only
    // the bound identities were fetched, to learn their object ids.
    assert_eq!(world.emulator.imds_tokens_issued(VM, c), 0);
    assert_eq!(world.emulator.imds_tokens_issued(VM, "id-b"), 1);
    assert_eq!(world.emulator.imds_token_requests(VM), 1);
}

#[tokio::test]
async fn a_pod_without_identities_is_refused_every_token() {
    let world = World::start().await;
    let proxy = Running::ready(world.config(vec![])).await;
    let client = format!("&client_id={}", world.client_id("id-a"));
    for extra in ["", client.as_str()] {
        let v = proxy
            .token(VAULT, extra)
            .await
            .assert_imds_error(403, "forbidden");
        assert_eq!(v["error_description"], "no identity is bound to this pod");
    }
    assert_eq!(world.emulator.imds_token_requests(VM), 0);
}

#[tokio::test]
async fn bad_requests_get_fast_imds_shaped_errors() {
    let world = World::start().await;
    let proxy = Running::start(world.config(vec![world.msi("id-a")])).await;
    let query = format!("api-version=2018-02-01&resource={}", enc(VAULT));
    // Python azure-identity's probe: no Metadata header, 1 s timeout.
    let started = Instant::now();
    let probe = get(proxy.addr, &format!("{TOKEN}?{query}"), &[]).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    probe.assert_imds_error(400, "invalid_request");
    let bypasses = [
        "/metadata/identity/oauth2/token/",
        "/metadata//identity/oauth2/token",
        "/metadata/identity/oauth2/%74oken",
        "/metadata/identity/../identity/oauth2/token",
        "/metadata/Identity/oauth2/token",
        "/metadata/identity/oauth2/token;x",
        "/metadata/identity\\oauth2/token",
    ];
    for path in bypasses {
        get(
            proxy.addr,
            &format!("{path}?{query}"),
            &[("Metadata", "true")],
        )
        .await
        .assert_imds_error(400, "invalid_request");
    }
    let headers = [("Metadata", "true"), ("X-Forwarded-For", "10.0.0.1")];
    get(proxy.addr, &format!("{TOKEN}?{query}"), &headers)
        .await
        .assert_imds_error(400, "invalid_request");
    let post = request(
        proxy.addr,
        "POST",
        &format!("{TOKEN}?{query}"),
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(post.status, 405, "{post:?}");
    post.assert_imds_error(405, "method_not_allowed");
    get(proxy.addr, "/healthz", &[("Metadata", "true")])
        .await
        .assert_imds_error(404, "not_found");
    proxy
        .token(VAULT, "&client_id=a&object_id=b")
        .await
        .assert_imds_error(400, "invalid_request");
}

#[tokio::test]
async fn a_cached_token_is_served_without_asking_upstream() {
    let (world, proxy) = two_identities().await;
    let first = proxy.token(VAULT, "").await.json();
    let second = proxy.token(VAULT, "").await.json();
    assert_eq!(first["access_token"], second["access_token"]);
    assert_eq!(world.emulator.imds_token_requests(VM), 1);
    // The warm-up's token for the management resource was cached too.
    proxy.token(MGMT, "").await.assert_token(MGMT);
    assert_eq!(world.emulator.imds_token_requests(VM), 1);
}

#[tokio::test]
async fn fifty_concurrent_requests_make_one_upstream_call() {
    let (world, proxy) = two_identities().await;
    world
        .emulator
        .set_imds_latency(VM, Duration::from_millis(300));
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let addr = proxy.addr;
            let target = format!("{TOKEN}?api-version=2018-02-01&resource={}", enc(VAULT));
            tokio::spawn(async move { get(addr, &target, &[("Metadata", "true")]).await })
        })
        .collect();
    let mut tokens = std::collections::BTreeSet::new();
    for r in requests {
        let reply = r.await.unwrap();
        reply.assert_token(VAULT);
        tokens.insert(reply.json()["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(tokens.len(), 1);
    assert_eq!(world.emulator.imds_token_requests(VM), 1);
}

#[tokio::test]
async fn bypass_cache_fetches_a_new_token() {
    let (world, proxy) = two_identities().await;
    let first = proxy.token(VAULT, "").await.assert_token(VAULT);
    let second = proxy
        .token(VAULT, "&bypass_cache=true")
        .await
        .assert_token(VAULT);
    assert_ne!(first["uti"], second["uti"]);
    let third = proxy.token(VAULT, "").await.assert_token(VAULT);
    assert_eq!(second["uti"], third["uti"]);
    assert_eq!(world.emulator.imds_token_requests(VM), 2);
}

#[tokio::test]
async fn a_token_is_refreshed_ahead_of_expiry_in_the_background() {
    let world = World::start().await;
    // 12 s tokens: refreshed once fewer than 6 s are left, served while more than 2.
    world
        .emulator
        .set_imds_token_lifetime(Duration::from_secs(12));
    let proxy = Running::ready(world.config(vec![world.msi("id-a")])).await;
    world.emulator.reset_counters();
    let first = proxy.token(VAULT, "").await.json();
    let expires_on: u64 = first["expires_on"].as_str().unwrap().parse().unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    while expires_on.saturating_sub(now()) > 5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let served = proxy.token(VAULT, "").await.json();
    assert_eq!(
        served["access_token"], first["access_token"],
        "the cached token is served while refreshing"
    );
    assert!(eventually(10, async || world.emulator.imds_token_requests(VM) == 2).await);
    let renewed = proxy.token(VAULT, "").await.json();
    assert_ne!(renewed["access_token"], first["access_token"]);
    let claims = decode_claims(renewed["access_token"].as_str().unwrap());
    assert!(claims["exp"].as_u64().unwrap() > expires_on);
    assert_eq!(world.emulator.imds_token_requests(VM), 2);
}
