//! The steps that need root: the pod's network namespace with `podid-init` and `podid-proxy` run exactly as admitted, and an unmodified Azure SDK in it.

use podid_e2e::pod::{PodEnv, Sdk};
use podid_e2e::world::Identity;

use crate::world::{OTHER, STORAGE};

/// Runs `podid-init` as rendered (uid, capabilities, command line) in the pod's namespace.
pub async fn init(env: &PodEnv) -> Result<((), String), String> {
    let out = env.install_redirect()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "podid-init failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rules = stdout.lines().filter(|l| l.contains("-A ")).count();
    Ok((
        (),
        format!(
            "in netns {}: podid-init as uid {} with {} installed {rules} rules (169.254.169.254:80 -> 127.0.0.1:15391)",
            env.topo.pod.name(),
            env.init.uid,
            env.init.caps.join(",").to_uppercase()
        ),
    ))
}

/// Starts `podid-proxy` as rendered and waits for its `/ready`.
pub async fn proxy(env: &mut PodEnv) -> Result<((), String), String> {
    env.start_proxy()?;
    let identities = env
        .serve
        .argv
        .iter()
        .filter(|a| a.starts_with("--identity"))
        .count();
    Ok((
        (),
        format!(
            "podid-proxy as uid {} with {identities} identity, /ready 200 (the default identity's token obtained)",
            env.serve.uid
        ),
    ))
}

/// The Rust azure_identity client, as uid 1000 with no AZURE_* variables, gets its own identity's token.
pub async fn own_token(env: &PodEnv) -> Result<((), String), String> {
    let got = env.sdk(Sdk::Rust, None, &[])?;
    let claims = &got.json["claims"];
    if !got.success || claims["appid"] != STORAGE.client_id {
        return Err(format!(
            "no token for {}: {}\n{}",
            STORAGE.name,
            got.json,
            tail_of(env)
        ));
    }
    Ok((
        (),
        format!(
            "Rust azure_identity ManagedIdentityCredential got a token for {} (appid {}, aud {})",
            STORAGE.name, claims["appid"], claims["aud"]
        ),
    ))
}

/// The same client asking for the identity on the VM that is not the pod's gets the proxy's 403.
pub async fn foreign_token(env: &PodEnv) -> Result<((), String), String> {
    let got = refused(env, OTHER)?;
    Ok((
        (),
        format!(
            "asked for {} (on the VM, not the pod's): refused; {got}",
            OTHER.name
        ),
    ))
}

fn refused(env: &PodEnv, id: Identity) -> Result<String, String> {
    let got = env.sdk(Sdk::Rust, Some(id.client_id), &[])?;
    let message = got.json["message"].as_str().unwrap_or_default().to_owned();
    if got.success || !(message.contains("403") || message.contains("forbidden")) {
        return Err(format!(
            "not refused with 403: {}\n{}",
            got.json,
            tail_of(env)
        ));
    }
    // The SDK's message quotes the proxy's IMDS-shaped JSON answer: show that.
    let answer = message.find('{').and_then(|at| {
        serde_json::Deserializer::from_str(&message[at..])
            .into_iter::<serde_json::Value>()
            .next()?
            .ok()
    });
    Ok(match answer {
        Some(a) => format!(
            "the proxy answered {}: {}",
            a["error"], a["error_description"]
        ),
        None => message.lines().next().unwrap_or_default().to_owned(),
    })
}

fn tail_of(env: &PodEnv) -> String {
    format!("proxy log:\n{}", crate::context::tail(&env.proxy_log(), 15))
}
