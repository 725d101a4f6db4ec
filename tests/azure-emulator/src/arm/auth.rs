//! Bearer tokens on ARM requests: required always; with token checks on, they must be ARM tokens of the emulator's tenant.

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::error::ArmError;
use crate::{ids, jwt};

/// Audiences ARM accepts.
const ARM_AUDIENCES: [&str; 4] = [
    "https://management.azure.com/",
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
];

/// Who is calling, from the token's claims (or placeholders for opaque tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `appid`.
    pub client_id: String,
    /// `oid`.
    pub object_id: String,
}

/// Checks the `Authorization` header. With `check_tokens`, the token must be
/// a JWT for ARM, of tenant `tenant`, not expired.
pub fn authenticate(
    headers: &HeaderMap,
    check_tokens: bool,
    tenant: &str,
) -> Result<Caller, ArmError> {
    let challenge = |code: &'static str, message: String| {
        let mut e = ArmError::new(StatusCode::UNAUTHORIZED, code, message.clone());
        let value = format!(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/{tenant}\", \
             error=\"invalid_token\", error_description=\"{message}\""
        );
        e.challenge = Some(value.into());
        e
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        let message = "Authentication failed. The 'Authorization' header is missing.";
        return Err(challenge("AuthenticationFailed", message.into()));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace));
    let Some(token) = token else {
        let message =
            "Authentication failed. The 'Authorization' header is provided in an invalid format.";
        return Err(challenge("AuthenticationFailed", message.into()));
    };
    let claims = jwt::decode_claims(token);
    if check_tokens {
        check_claims(&claims, tenant).map_err(|(code, message)| challenge(code, message))?;
    }
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let zero = "00000000-0000-0000-0000-000000000000";
    Ok(Caller {
        client_id: claim("appid")
            .or_else(|| claim("azp"))
            .unwrap_or_else(|| zero.into()),
        object_id: claim("oid").unwrap_or_else(|| zero.into()),
    })
}

fn check_claims(claims: &Value, tenant: &str) -> Result<(), (&'static str, String)> {
    if !claims.is_object() {
        return Err((
            "InvalidAuthenticationToken",
            "The access token is invalid.".into(),
        ));
    }
    let aud = claims
        .get("aud")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !ARM_AUDIENCES.contains(&aud) {
        return Err((
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should \
                 exactly match with one of the allowed audiences '{}'.",
                ARM_AUDIENCES.join("','")
            ),
        ));
    }
    let tid = claims
        .get("tid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !tid.eq_ignore_ascii_case(tenant) {
        return Err((
            "InvalidAuthenticationTokenTenant",
            format!(
                "The access token is from the wrong issuer '{tid}'. It must match the tenant '{tenant}'."
            ),
        ));
    }
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    let now = ids::unix_now();
    if exp <= now {
        return Err((
            "ExpiredAuthenticationToken",
            format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                ids::aad_timestamp(exp),
                ids::aad_timestamp(now)
            ),
        ));
    }
    Ok(())
}
