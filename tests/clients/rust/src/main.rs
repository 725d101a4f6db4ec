//! `podid-sdk-client-rust`: azure_identity's `ManagedIdentityCredential`, as an app in a pod uses it.
//!
//! Usage: `podid-sdk-client-rust [--client-id ID] [--resource URI]`. Prints one JSON
//! object on stdout, `{"ok": true, "expires_on": N, "claims": {…}}` (the token's JWT
//! payload) or `{"ok": false, "error": KIND, "message": TEXT}`, and exits 0 or 1.

use std::process::ExitCode;

use azure_core::credentials::TokenCredential;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Needed only when reqwest is built with a provider-less rustls (see Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (client_id, resource) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let (result, code) = match token(client_id, &resource).await {
        Ok(result) => (result, ExitCode::SUCCESS),
        Err(e) => (
            json!({"ok": false, "error": format!("{:?}", e.kind()), "message": e.to_string()}),
            ExitCode::FAILURE,
        ),
    };
    println!("{result}");
    code
}

async fn token(client_id: Option<String>, resource: &str) -> azure_core::Result<Value> {
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(UserAssignedId::ClientId),
        ..Default::default()
    };
    let credential = ManagedIdentityCredential::new(Some(options))?;
    let scope = format!("{resource}/.default");
    let token = credential.get_token(&[&scope], None).await?;
    Ok(json!({
        "ok": true,
        "expires_on": token.expires_on.unix_timestamp(),
        "claims": claims(token.token.secret()),
    }))
}

/// The JWT payload of `token`, or null if it is not a JWT.
fn claims(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// `[--client-id ID] [--resource URI]`.
fn parse(mut args: impl Iterator<Item = String>) -> Result<(Option<String>, String), String> {
    let usage = "usage: podid-sdk-client-rust [--client-id ID] [--resource URI]";
    let (mut client_id, mut resource) = (None, "https://vault.azure.net".to_owned());
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(usage)?;
        match flag.as_str() {
            "--client-id" => client_id = Some(value),
            "--resource" => resource = value,
            _ => return Err(usage.into()),
        }
    }
    Ok((client_id, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_unknown_ones_are_refused() {
        let args = |v: &[&str]| {
            v.iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert_eq!(
            parse(args(&["--client-id", "abc"])),
            Ok((Some("abc".into()), "https://vault.azure.net".into()))
        );
        assert!(parse(args(&["--client-id"])).is_err());
        assert!(parse(args(&["--bogus", "x"])).is_err());
    }

    #[test]
    fn claims_are_read_from_the_jwt_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"appid":"x"}"#);
        assert_eq!(claims(&format!("h.{payload}.s"))["appid"], "x");
        assert_eq!(claims("not-a-jwt"), Value::Null);
    }
}
