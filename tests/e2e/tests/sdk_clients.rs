//! Real Azure SDK clients in the pod (Python azure-identity, JS @azure/identity, Rust azure_identity), reaching the proxy only through the redirect (root only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use podid_e2e::bins;
use podid_e2e::expect::{self, assert_token_for};
use podid_e2e::pod::{PodEnv, Sdk};
use podid_e2e::proc::root_or_skip;
use podid_e2e::world::{A, C};

fn env_with_proxy(tag: &str) -> PodEnv {
    let bins = bins::get(env!("CARGO_BIN_EXE_podid-e2e-http")).unwrap_or_else(|e| panic!("{e}"));
    let mut env = PodEnv::start(tag, bins).unwrap_or_else(|e| panic!("{e}"));
    let out = env.install_redirect().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "podid-init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.start_proxy().unwrap_or_else(|e| panic!("{e}"));
    env
}

fn sdk_gets_tokens_for_bound_identities_only(sdk: Sdk) {
    let env = env_with_proxy(&format!("{sdk:?}").to_ascii_lowercase());
    expect::sdk_gets_tokens_for_bound_identities_only(&env, sdk);
}

#[test]
fn python_azure_identity_gets_tokens_for_bound_identities_only() {
    if root_or_skip("python_azure_identity_gets_tokens_for_bound_identities_only") {
        sdk_gets_tokens_for_bound_identities_only(Sdk::Python);
    }
}

#[test]
fn python_azure_identity_in_a_credential_chain_probes_then_gets_the_default_token() {
    if !root_or_skip(
        "python_azure_identity_in_a_credential_chain_probes_then_gets_the_default_token",
    ) {
        return;
    }
    // In a chain the credential first sends a header-less probe with a 1 s
    // timeout and no retries; it must get a fast answer for the token to follow.
    let env = env_with_proxy("pychain");
    let got = env
        .sdk(Sdk::Python, None, &["--chained"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_token_for(&env, Sdk::Python, "chained, default identity", &got, A);
}

#[test]
fn node_azure_identity_gets_tokens_for_bound_identities_only() {
    if root_or_skip("node_azure_identity_gets_tokens_for_bound_identities_only") {
        sdk_gets_tokens_for_bound_identities_only(Sdk::Node);
    }
}

#[test]
fn rust_azure_identity_gets_tokens_for_bound_identities_only() {
    if root_or_skip("rust_azure_identity_gets_tokens_for_bound_identities_only") {
        sdk_gets_tokens_for_bound_identities_only(Sdk::Rust);
    }
}

#[test]
fn sdk_clients_without_the_redirect_would_get_the_unbound_identity() {
    if !root_or_skip("sdk_clients_without_the_redirect_would_get_the_unbound_identity") {
        return;
    }
    // The control: the same client, the same pod, no podid-init. It reaches the
    // node's IMDS and gets C, so a refusal above is podid's doing.
    let bins = bins::get(env!("CARGO_BIN_EXE_podid-e2e-http")).unwrap_or_else(|e| panic!("{e}"));
    let env = PodEnv::start("control", bins).unwrap_or_else(|e| panic!("{e}"));
    let got = env
        .sdk(Sdk::Rust, Some(C.client_id), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_token_for(&env, Sdk::Rust, "no redirect, client_id of C", &got, C);
}
