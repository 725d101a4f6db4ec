//! The discovery documents MSAL-based SDKs fetch before a token call, pointing at this emulator.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ALIASES, AadContext, AadError, bad_input};

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(super) async fn openid_configuration(
    State(ctx): State<AadContext>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path(tenant)) = tenant else {
        return bad_input().into_response();
    };
    let alias = ALIASES.iter().any(|a| a.eq_ignore_ascii_case(&tenant));
    if !alias && !ctx.azure.read(|s| s.knows_tenant(&tenant)) {
        return AadError::unknown_tenant(&tenant).into_response();
    }
    let base = ctx.base_url(&headers);
    let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h);
    // Azure AD writes the placeholder `{tenantid}` into the issuer of the
    // alias tenants; clients substitute it.
    let issuer_tenant = if alias { "{tenantid}" } else { tenant.as_str() };
    let t = format!("{base}/{tenant}");
    Json(json!({
        "token_endpoint": format!("{t}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{t}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{t}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{t}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{t}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "oid"],
        "kerberos_endpoint": format!("{t}/kerberos"),
        "tenant_region_scope": null,
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": base,
    }))
    .into_response()
}

/// `GET /{tenant}/discovery/instance` (MSAL's instance discovery): says this
/// host is its own, only alias.
pub(super) async fn instance(
    State(ctx): State<AadContext>,
    tenant: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(Path(tenant)) = tenant else {
        return bad_input().into_response();
    };
    let base = ctx.base_url(&headers);
    let host = base
        .split_once("://")
        .map_or(base.as_str(), |(_, h)| h)
        .to_owned();
    // MSAL names the authority it wants in `authorization_endpoint`
    // (`https://host/<tenant>/oauth2/v2.0/authorize`); answer for that tenant.
    let params: BTreeMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let wanted = params
        .get("authorization_endpoint")
        .and_then(|url| url.split_once("://"))
        .and_then(|(_, rest)| rest.split('/').nth(1))
        .filter(|t| !t.is_empty())
        .map_or(tenant, str::to_owned);
    Json(json!({
        "tenant_discovery_endpoint": format!("{base}/{wanted}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{
            "preferred_network": host,
            "preferred_cache": host,
            "aliases": [host],
        }],
    }))
    .into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys`: no keys, as the emulator signs nothing.
pub(super) async fn keys() -> Response {
    Json(json!({ "keys": [] })).into_response()
}
