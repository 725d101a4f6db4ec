//! What the SDK tests expect of a pod with A (default) and B bound: their tokens, with the right claims, and a refusal for C.
#![allow(clippy::panic)]

use crate::pod::{PodEnv, Sdk, SdkResult};
use crate::world::{A, B, C, Identity};

/// Panics unless `got` is a token for `id` (client, object and resource ids, audience).
pub fn assert_token_for(env: &PodEnv, sdk: Sdk, what: &str, got: &SdkResult, id: Identity) {
    let claims = &got.json["claims"];
    assert!(
        got.success && got.json["ok"] == true,
        "{sdk:?}, {what}: no token: {}\nstderr:\n{}\nproxy log:\n{}",
        got.json,
        got.stderr,
        env.proxy_log()
    );
    assert_eq!(
        claims["appid"], id.client_id,
        "{sdk:?}, {what}: token names the wrong identity: {claims}"
    );
    assert_eq!(claims["oid"], id.object_id, "{sdk:?}, {what}: {claims}");
    assert_eq!(
        claims["xms_mirid"],
        id.resource_id(),
        "{sdk:?}, {what}: {claims}"
    );
    assert_eq!(
        claims["aud"], "https://vault.azure.net",
        "{sdk:?}, {what}: {claims}"
    );
}

/// Default identity, the second bound identity by client id, and a refusal for C.
pub fn sdk_gets_tokens_for_bound_identities_only(env: &PodEnv, sdk: Sdk) {
    let run = |client_id| {
        env.sdk(sdk, client_id, &[])
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_token_for(env, sdk, "default identity", &run(None), A);
    assert_token_for(env, sdk, "client_id of B", &run(Some(B.client_id)), B);
    let refused = run(Some(C.client_id));
    assert!(
        !refused.success && refused.json["ok"] == false,
        "{sdk:?} got a token for C, which is not bound to the pod: {}",
        refused.json
    );
    assert!(refused.json["claims"].is_null(), "{}", refused.json);
    // The refusal is the proxy's 403 (`forbidden`), not a time-out or a crash.
    let message = refused.json["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("forbidden"),
        "{sdk:?} refused C for another reason: {message}"
    );
}
