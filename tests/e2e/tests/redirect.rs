//! The pod's IMDS traffic, raw: the redirect podid-init installs, the proxy uid's exemption, refusals of unbound identities and of bypass attempts (root only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use podid_e2e::bins::{self, Bins};
use podid_e2e::http::{RawOutcome, RawRequest};
use podid_e2e::pod::{APP_UID, PodEnv, imds};
use podid_e2e::proc::root_or_skip;
use podid_e2e::world::{self, A, C, Identity};
use serde_json::Value;

const PROXY_UID: u32 = 1501;
const Q: &str = "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

fn bins() -> &'static Bins {
    bins::get(env!("CARGO_BIN_EXE_podid-e2e-http")).unwrap_or_else(|e| panic!("{e}"))
}

fn token_request(selector: &str) -> RawRequest {
    RawRequest::imds(format!("/metadata/identity/oauth2/token?{Q}{selector}"))
}

/// The claims of the access token in a 200 response.
fn token_claims(outcome: &RawOutcome) -> Value {
    assert_eq!(outcome.status(), Some(200), "{outcome:?}");
    world::jwt_claims(outcome.json()["access_token"].as_str().unwrap_or_default())
}

fn assert_names(claims: &Value, id: Identity) {
    assert_eq!(claims["appid"], id.client_id, "{claims}");
    assert_eq!(claims["oid"], id.object_id, "{claims}");
}

fn env_with_redirect(tag: &str) -> PodEnv {
    let env = PodEnv::start(tag, bins()).unwrap_or_else(|e| panic!("{e}"));
    let out = env.install_redirect().unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podid-init {:?}: {stdout}{}",
        env.init.argv,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("-j PODID_OUTPUT") && stdout.contains("--uid-owner 1501"),
        "{stdout}"
    );
    env
}

#[test]
fn redirect_sends_every_uid_but_the_proxys_away_from_the_node_imds() {
    if !root_or_skip("redirect_sends_every_uid_but_the_proxys_away_from_the_node_imds") {
        return;
    }
    let env = PodEnv::start("redirect", bins()).unwrap_or_else(|e| panic!("{e}"));
    let for_c = [token_request(&format!("&client_id={}", C.client_id))];
    // Before podid-init, any uid in the pod gets C's token from the node: the hole podid closes.
    assert_names(
        &token_claims(&env.raw(APP_UID, imds(), &for_c).unwrap()[0]),
        C,
    );
    let out = env.install_redirect().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No proxy listens yet: a redirected connection is refused at 127.0.0.1:15391.
    for uid in [0, APP_UID, 65534] {
        let got = env.raw(uid, imds(), &for_c).unwrap();
        assert_eq!(got[0], RawOutcome::Refused, "uid {uid} was not redirected");
    }
    // The proxy's uid still reaches the node's IMDS, which hands it C's token.
    assert_names(
        &token_claims(&env.raw(PROXY_UID, imds(), &for_c).unwrap()[0]),
        C,
    );
}

#[test]
fn pod_uids_get_the_pods_identity_but_a_403_for_an_unbound_one_by_any_selector() {
    if !root_or_skip("pod_uids_get_the_pods_identity_but_a_403_for_an_unbound_one_by_any_selector")
    {
        return;
    }
    let mut env = env_with_redirect("refuse");
    env.start_proxy().unwrap_or_else(|e| panic!("{e}"));
    let default = env.raw(APP_UID, imds(), &[token_request("")]).unwrap();
    assert_names(&token_claims(&default[0]), A);
    let selectors = [
        format!("&client_id={}", C.client_id),
        format!("&client_id={}", C.client_id.to_ascii_uppercase()),
        format!("&object_id={}", C.object_id),
        format!("&msi_res_id={}", C.resource_id()),
        format!("&mi_res_id={}", C.resource_id()),
    ];
    let requests: Vec<_> = selectors.iter().map(|s| token_request(s)).collect();
    for uid in [APP_UID, 0] {
        for (selector, got) in selectors
            .iter()
            .zip(env.raw(uid, imds(), &requests).unwrap())
        {
            assert_eq!(
                got.status(),
                Some(403),
                "uid {uid}, {selector}: {got:?}\nproxy log:\n{}",
                env.proxy_log()
            );
            assert!(
                got.header("content-type")
                    .is_some_and(|t| t.starts_with("application/json")),
                "{got:?}"
            );
            let body = got.json();
            assert_eq!(body["error"], "forbidden", "{selector}: {body}");
            assert!(body["error_description"].is_string(), "{selector}: {body}");
        }
    }
    // The proxy itself (uid 1501) is exempt and still reaches the node directly.
    assert_names(
        &token_claims(&env.raw(PROXY_UID, imds(), &requests[..1]).unwrap()[0]),
        C,
    );
}

#[test]
fn bypass_corpus_through_the_redirect_is_refused_with_400() {
    if !root_or_skip("bypass_corpus_through_the_redirect_is_refused_with_400") {
        return;
    }
    let corpus = world::bypass_corpus(&bins::workspace_root()).unwrap();
    let mut env = env_with_redirect("bypass");
    env.start_proxy().unwrap_or_else(|e| panic!("{e}"));
    let requests: Vec<_> = corpus
        .iter()
        .map(|path| RawRequest::imds(format!("{path}?{Q}")))
        .collect();
    let outcomes = env.raw(APP_UID, imds(), &requests).unwrap();
    for (path, got) in corpus.iter().zip(&outcomes) {
        assert_eq!(got.status(), Some(400), "{path:?}: {got:?}");
        // Answers from the proxy's own routing are IMDS-shaped; a request line
        // the HTTP parser rejects outright may come back with no body.
        if let RawOutcome::Response { body, .. } = got
            && !body.is_empty()
        {
            assert_eq!(got.json()["error"], "invalid_request", "{path:?}: {body}");
        }
        assert!(
            !got.json().to_string().contains("access_token"),
            "{path:?} leaked a token"
        );
    }
}
