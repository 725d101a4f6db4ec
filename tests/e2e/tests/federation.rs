//! Workload identity federation end to end (root only): a pod whose identities are all federated gets their tokens from the stand-in's Entra ID with its service-account token, and cannot reach the node's IMDS at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use podid_e2e::bins::{self, Bins};
use podid_e2e::expect;
use podid_e2e::federation::{self, Federation, IMDS_SECOND_PORT};
use podid_e2e::http::{RawOutcome, RawRequest};
use podid_e2e::netns::IMDS_IP;
use podid_e2e::node::{GuardNode, injected_pod_of, pod_ip};
use podid_e2e::pod::{APP_UID, PodEnv, Sdk, imds};
use podid_e2e::proc::{as_root_app, as_uid, root_or_skip};
use podid_e2e::world::{self, A, C};
use serde_json::Value;

const PROXY_UID: u32 = 1501;

fn bins() -> &'static Bins {
    bins::get(env!("CARGO_BIN_EXE_podid-e2e-http")).unwrap_or_else(|e| panic!("{e}"))
}

fn token_request(resource: &str, selector: &str) -> RawRequest {
    RawRequest::imds(format!(
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}{selector}"
    ))
}

/// The pod rendered by `podid inject`, before podid-init ran.
fn federated_pod(tag: &str) -> (Federation, PodEnv) {
    let fed = Federation::new().unwrap_or_else(|e| panic!("{e}"));
    let env = PodEnv::start_with(tag, bins(), fed.scenario()).unwrap_or_else(|e| panic!("{e}"));
    (fed, env)
}

/// podid-init as rendered (it must be the reject mode), then the proxy.
fn install_and_serve(env: &mut PodEnv) {
    assert!(
        env.init.argv.iter().any(|a| a == "--reject-imds"),
        "an all-federated pod must get --reject-imds: {:?}",
        env.init.argv
    );
    let out = env.install_redirect().unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podid-init: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("-j PODID_IMDS") && !stdout.contains("uid-owner"),
        "{stdout}"
    );
    env.start_proxy().unwrap_or_else(|e| panic!("{e}"));
}

fn federated_env(tag: &str) -> (Federation, PodEnv) {
    let (fed, mut env) = federated_pod(tag);
    install_and_serve(&mut env);
    (fed, env)
}

fn claims(outcome: &RawOutcome) -> Value {
    assert_eq!(outcome.status(), Some(200), "{outcome:?}");
    world::jwt_claims(outcome.json()["access_token"].as_str().unwrap_or_default())
}

fn sdk_gets_federated_tokens(sdk: Sdk) {
    let (_fed, env) = federated_env(&format!("fed-{sdk:?}").to_ascii_lowercase());
    expect::sdk_gets_tokens_for_bound_identities_only(&env, sdk);
}

#[test]
fn python_azure_identity_gets_federated_tokens_for_bound_identities_only() {
    if root_or_skip("python_azure_identity_gets_federated_tokens_for_bound_identities_only") {
        sdk_gets_federated_tokens(Sdk::Python);
    }
}

#[test]
fn node_azure_identity_gets_federated_tokens_for_bound_identities_only() {
    if root_or_skip("node_azure_identity_gets_federated_tokens_for_bound_identities_only") {
        sdk_gets_federated_tokens(Sdk::Node);
    }
}

#[test]
fn rust_azure_identity_gets_federated_tokens_for_bound_identities_only() {
    if root_or_skip("rust_azure_identity_gets_federated_tokens_for_bound_identities_only") {
        sdk_gets_federated_tokens(Sdk::Rust);
    }
}

#[test]
fn a_root_app_with_default_capabilities_cannot_reach_the_node_imds_in_a_federated_pod() {
    if !root_or_skip(
        "a_root_app_with_default_capabilities_cannot_reach_the_node_imds_in_a_federated_pod",
    ) {
        return;
    }
    let vault = "https%3A%2F%2Fvault.azure.net";
    let for_c = [token_request(vault, &format!("&client_id={}", C.client_id))];
    let (_fed, mut env) = federated_pod("fed-attack");
    let second: std::net::SocketAddr = format!("{IMDS_IP}:{IMDS_SECOND_PORT}").parse().unwrap();
    // The control: before podid-init any uid gets C's token from the node, on either port.
    for addr in [imds(), second] {
        let before = env.raw(APP_UID, addr, &for_c).unwrap();
        assert_eq!(claims(&before[0])["appid"], C.client_id, "{addr}");
    }
    install_and_serve(&mut env);
    let root = as_root_app(None);
    let root_as_proxy = as_root_app(Some(PROXY_UID));
    for (who, how) in [
        ("root", &root),
        ("root switched to uid 1501", &root_as_proxy),
    ] {
        // Port 80: redirected to the pod's own proxy, which refuses C and serves A.
        let got = env.raw_as(how, imds(), &for_c).unwrap();
        assert_eq!(got[0].status(), Some(403), "{who}: {got:?}");
        assert_eq!(got[0].json()["error"], "forbidden", "{who}: {got:?}");
        let own = env
            .raw_as(how, imds(), &[token_request(vault, "")])
            .unwrap();
        assert_eq!(claims(&own[0])["appid"], A.client_id, "{who}");
        // Every other port is rejected at once: the node's IMDS is not reachable at all.
        for port in [IMDS_SECOND_PORT, 81, 443, 15391] {
            let addr = format!("{IMDS_IP}:{port}").parse().unwrap();
            let got = env.raw_as(how, addr, &for_c).unwrap();
            assert_eq!(got[0], RawOutcome::Refused, "{who}, port {port}");
        }
        // Other IMDS paths are not forwarded (there is nothing to forward to).
        let meta = env
            .raw_as(
                how,
                imds(),
                &[RawRequest::imds(
                    "/metadata/instance?api-version=2021-02-01",
                )],
            )
            .unwrap();
        assert!(
            meta[0].status().is_some_and(|s| (400..500).contains(&s))
                && meta[0].json()["error"].is_string(),
            "{who}: {meta:?}"
        );
    }
    // The proxy's own uid, which an ordinary pod exempts, is redirected too.
    let got = env.raw_as(&as_uid(PROXY_UID), imds(), &for_c).unwrap();
    assert_eq!(got[0].status(), Some(403), "{got:?}");
}

#[test]
fn a_token_of_another_service_account_is_refused_by_entra_and_answered_imds_shaped() {
    if !root_or_skip(
        "a_token_of_another_service_account_is_refused_by_entra_and_answered_imds_shaped",
    ) {
        return;
    }
    let (fed, env) = federated_env("fed-subject");
    // A resource not fetched yet, so the answer cannot come from the cache.
    let storage = [token_request("https%3A%2F%2Fstorage.azure.com", "")];
    fed.write_token("someone-else").unwrap();
    let got = env.raw(APP_UID, imds(), &storage).unwrap();
    let body = got[0].json();
    assert_eq!(got[0].status(), Some(401), "{got:?}\n{}", env.proxy_log());
    assert_eq!(body["error"], "invalid_client", "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains("AADSTS700213")
            && description.contains("system:serviceaccount:e2e:someone-else"),
        "{description}"
    );
    // The kubelet rotates the file back to the pod's own account: re-read, accepted.
    fed.write_token(podid_e2e::federation::SERVICE_ACCOUNT)
        .unwrap();
    let got = env.raw(APP_UID, imds(), &storage).unwrap();
    let c = claims(&got[0]);
    assert_eq!(
        (c["appid"].as_str(), c["aud"].as_str()),
        (Some(A.client_id), Some("https://storage.azure.com"))
    );
}

#[test]
fn the_node_guard_keeps_an_all_federated_pod_from_imds_even_without_its_own_rules() {
    if !root_or_skip(
        "the_node_guard_keeps_an_all_federated_pod_from_imds_even_without_its_own_rules",
    ) {
        return;
    }
    // The pod's own rules are absent here (as if a NET_ADMIN container removed them, or
    // frames went out below netfilter): only the node can still stop it.
    let mut node = GuardNode::start("fed-guard", bins(), 1).unwrap_or_else(|e| panic!("{e}"));
    let manifest = (federation::pod_manifest(), federation::identity_objects());
    let pod = injected_pod_of(node.bins, node.dir(), "fed", &pod_ip(0), &manifest).unwrap();
    node.write_pods(&[pod]).unwrap();
    node.start_guard(&[]).unwrap_or_else(|e| panic!("{e}"));
    let for_c = [token_request(
        "https%3A%2F%2Fvault.azure.net",
        &format!("&client_id={}", C.client_id),
    )];
    for uid in [PROXY_UID, 0] {
        let got = node.raw(0, uid, imds(), &for_c).unwrap().remove(0);
        assert_eq!(
            got.status(),
            Some(403),
            "uid {uid}: {got:?}\n{}",
            node.guard_log()
        );
        let text = got.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            text.contains("blocked by podid-node-guard") && text.contains("needs no IMDS"),
            "{text}"
        );
    }
    let metrics = node.metrics().unwrap();
    assert!(
        metrics.contains("podid_node_guard_blocked_total{reason=\"federated\"} 2"),
        "{metrics}"
    );
}
