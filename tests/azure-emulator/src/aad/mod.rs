//! Azure AD's v2.0 token endpoint for service principals (client secret or certificate assertion) and federated tokens, plus discovery.

pub mod assertion;
mod discovery;
mod error;
pub mod federated;

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tracing::debug;

pub use self::error::AadError;
use crate::azure::Azure;
use crate::ids;
use crate::jwt::{self, TokenClaims};
use crate::principal::ServicePrincipal;

/// Tenant aliases that name no tenant: the client-credentials grant needs a real one.
const ALIASES: &[&str] = &["common", "organizations", "consumers"];

/// What every Azure AD handler knows.
#[derive(Clone, Debug)]
struct AadContext {
    azure: Azure,
    scheme: &'static str,
}

impl AadContext {
    /// `scheme://host` as the client addressed us, so discovery documents
    /// point back at this emulator whatever name or port it was reached by.
    fn base_url(&self, headers: &HeaderMap) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("{}://{host}", self.scheme)
    }
}

/// The Azure AD router; `tls` says whether it is served over HTTPS (for the
/// URLs it writes into discovery documents and expects in assertions).
pub fn router(azure: Azure, tls: bool) -> Router {
    let ctx = AadContext {
        azure,
        scheme: if tls { "https" } else { "http" },
    };
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", any(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_configuration).fallback(method_not_allowed),
        )
        .route(
            "/{tenant}/discovery/instance",
            get(discovery::instance).fallback(method_not_allowed),
        )
        .route(
            "/{tenant}/discovery/v2.0/keys",
            get(discovery::keys).fallback(method_not_allowed),
        )
        .fallback(not_found)
        .with_state(ctx)
}

/// What a request the extractors cannot read gets: JSON, as everything else.
fn bad_input() -> AadError {
    AadError::bad_request(
        "invalid_request",
        90_014,
        "The request could not be read (path or body).",
    )
}

async fn method_not_allowed() -> Response {
    AadError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        900_561,
        "The endpoint only accepts GET requests.",
    )
    .into_response()
}

async fn not_found() -> Response {
    AadError::new(
        StatusCode::NOT_FOUND,
        "invalid_request",
        900_561,
        "The endpoint does not exist on this emulator.",
    )
    .into_response()
}

async fn token(
    State(ctx): State<AadContext>,
    tenant: Result<Path<String>, PathRejection>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (tenant, body) = match (tenant, body) {
        (Ok(Path(tenant)), Ok(body)) => (tenant, body),
        _ => return bad_input().into_response(),
    };
    if method != Method::POST {
        let message =
            format!("The endpoint only accepts POST requests. Received a {method} request.");
        return AadError::bad_request("invalid_request", 900_561, message).into_response();
    }
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    match grant(&ctx, &tenant, &headers, &form) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The client-credentials grant, checked in Azure AD's order: tenant,
/// client, grant, scope, application, credential.
fn grant(
    ctx: &AadContext,
    tenant: &str,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Result<Value, AadError> {
    check_tenant(&ctx.azure, tenant)?;
    let field = |name: &str| form.get(name).filter(|v| !v.is_empty());
    let client_id = field("client_id").ok_or_else(|| AadError::missing("client_id"))?;
    if let Some(fault) = ctx.azure.admit_aad_request(client_id) {
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut e = AadError::new(
            status,
            "temporarily_unavailable",
            90_033,
            "A transient error has occurred. Please try again.",
        );
        e.retry_after = fault.retry_after;
        return Err(e);
    }
    let grant_type = field("grant_type").ok_or_else(|| AadError::missing("grant_type"))?;
    if grant_type != "client_credentials" {
        let message = format!("The app requested an unsupported grant type '{grant_type}'.");
        return Err(AadError::bad_request(
            "unsupported_grant_type",
            70_003,
            message,
        ));
    }
    let resource = resource_of(field("scope").ok_or_else(|| AadError::missing("scope"))?)?;
    let (sp, mi_resource_id) = ctx
        .azure
        .read(|s| s.application(client_id))
        .filter(|(sp, _)| sp.tenant_id.eq_ignore_ascii_case(tenant))
        .ok_or_else(|| unknown_client(client_id, tenant))?;
    let federated_app = ctx
        .azure
        .read(|s| !s.federated_credentials(&sp.client_id).is_empty());
    match form.get("client_assertion") {
        // An app with federated credentials, and an assertion naming no certificate.
        Some(assertion) if federated_app && federated::is_federated(assertion) => {
            check_assertion_type(form)?;
            ctx.azure
                .read(|s| {
                    let credentials = s.federated_credentials(&sp.client_id);
                    federated::verify(assertion, credentials, s.issuer_keys(), ids::unix_now())
                })
                .map_err(|e| AadError::invalid_client(e.code(), e.to_string()))?;
        }
        _ => authenticate(
            &sp,
            form,
            &expected_audiences(&ctx.base_url(headers), tenant),
        )?,
    }
    debug!(client_id = %sp.client_id, %resource, "issued Azure AD token");
    Ok(token_body(
        &ctx.azure,
        &sp,
        mi_resource_id.as_deref(),
        &resource,
    ))
}

fn check_assertion_type(form: &BTreeMap<String, String>) -> Result<(), AadError> {
    if form.get("client_assertion_type").map(String::as_str) != Some(assertion::JWT_BEARER) {
        let message = format!("client_assertion_type must be '{}'.", assertion::JWT_BEARER);
        return Err(AadError::bad_request("invalid_request", 50_027, message));
    }
    Ok(())
}

fn check_tenant(azure: &Azure, tenant: &str) -> Result<(), AadError> {
    if ALIASES.iter().any(|a| a.eq_ignore_ascii_case(tenant)) {
        return Err(AadError::bad_request(
            "invalid_request",
            50_059,
            "No tenant-identifying information found in either the request or implied by any provided credentials.",
        ));
    }
    if !azure.read(|s| s.knows_tenant(tenant)) {
        return Err(AadError::unknown_tenant(tenant));
    }
    Ok(())
}

/// The resource of a client-credentials scope: the one ending in `/.default`.
fn resource_of(scope: &str) -> Result<String, AadError> {
    scope
        .split_whitespace()
        .find_map(|s| s.strip_suffix("/.default"))
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            AadError::bad_request(
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            )
        })
}

fn unknown_client(client_id: &str, tenant: &str) -> AadError {
    AadError::bad_request(
        "unauthorized_client",
        700_016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

/// The `aud` values a client assertion may carry: this tenant's token endpoints.
fn expected_audiences(base: &str, tenant: &str) -> Vec<String> {
    ["oauth2/v2.0/token", "oauth2/token", "v2.0"]
        .iter()
        .map(|tail| format!("{base}/{tenant}/{tail}").to_ascii_lowercase())
        .collect()
}

fn authenticate(
    sp: &ServicePrincipal,
    form: &BTreeMap<String, String>,
    audiences: &[String],
) -> Result<(), AadError> {
    if let Some(assertion) = form.get("client_assertion") {
        check_assertion_type(form)?;
        let expected = assertion::Expected {
            client_id: &sp.client_id,
            audiences,
            now: ids::unix_now(),
        };
        return assertion::verify(assertion, sp, &expected)
            .map_err(|e| AadError::invalid_client(e.code(), e.to_string()));
    }
    let Some(secret) = form.get("client_secret") else {
        return Err(AadError::invalid_client(
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    if !sp.secrets.iter().any(|s| s == secret) {
        return Err(AadError::invalid_client(
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                sp.client_id
            ),
        ));
    }
    Ok(())
}

/// Azure AD's success shape: numbers, not strings (unlike IMDS).
fn token_body(
    azure: &Azure,
    sp: &ServicePrincipal,
    mi_resource_id: Option<&str>,
    resource: &str,
) -> Value {
    let lifetime = azure.aad_token_lifetime().as_secs();
    let now = ids::unix_now();
    let access_token = jwt::mint(&TokenClaims {
        audience: resource,
        tenant_id: &sp.tenant_id,
        client_id: &sp.client_id,
        object_id: &sp.object_id,
        mi_resource_id,
        vm_resource_id: None,
        issued_at: now,
        expires_on: now + lifetime,
    });
    json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    })
}
