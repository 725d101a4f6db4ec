//! The IMDS of one VM: the managed-identity token endpoint and the metadata paths around it.

mod error;
mod metadata;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use tracing::debug;

pub use self::error::ImdsError;
use crate::azure::{Admission, Azure};
use crate::ids;
use crate::jwt::{self, TokenClaims};
use crate::resolve::{self, Subject};

/// Path of the managed-identity token endpoint.
pub const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// What every handler of one VM's IMDS knows.
#[derive(Clone, Debug)]
struct VmContext {
    azure: Azure,
    name: Arc<str>,
}

/// The IMDS router standing for VM `vm` (a VM name in the state).
pub fn router(azure: Azure, vm: &str) -> Router {
    let ctx = VmContext {
        azure,
        name: Arc::from(vm),
    };
    Router::new()
        .route(TOKEN_PATH, any(token))
        .route("/metadata/instance", any(metadata::instance))
        .route("/metadata/instance/{*path}", any(metadata::instance_path))
        .route("/metadata/versions", any(metadata::versions))
        .route("/metadata/identity/info", any(metadata::identity_info))
        .route("/metadata/attested/document", any(metadata::attested))
        .fallback(not_found)
        .with_state(ctx)
}

async fn not_found() -> Response {
    ImdsError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "The requested path was not found",
    )
    .into_response()
}

async fn token(
    State(vm): State<VmContext>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match issue(&vm, &method, &headers, query.as_deref()).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The token endpoint, in Azure's order: request rules, throttling, then
/// the identity lookup.
async fn issue(
    vm: &VmContext,
    method: &Method,
    headers: &HeaderMap,
    raw_query: Option<&str>,
) -> Result<Value, ImdsError> {
    rules::check_request(method, headers)?;
    let query = rules::parse_token_query(raw_query)?;
    let (slot, latency, fault) = match vm.azure.admit_token_request(&vm.name) {
        Admission::Throttled(secs) => return Err(ImdsError::throttled(secs)),
        Admission::Go {
            _slot,
            latency,
            fault,
        } => (_slot, latency, fault),
    };
    if latency > Duration::ZERO {
        tokio::time::sleep(latency).await;
    }
    if let Some(f) = fault {
        return Err(ImdsError::injected(f.status, f.retry_after));
    }
    let (subject, vm_id) = vm
        .azure
        .read(|s| {
            let subject = resolve::resolve(s, &vm.name, &query.selector)?;
            let vm_id = s.vm(&vm.name).map(|v| v.resource_id.clone());
            Ok((subject, vm_id))
        })
        .map_err(|e: resolve::ResolveError| ImdsError::invalid_request(e.to_string()))?;
    let body = token_body(vm, &subject, vm_id.as_deref(), &query.resource);
    vm.azure.record_issued(&vm.name, &subject.client_id);
    debug!(vm = %vm.name, client_id = %subject.client_id, resource = %query.resource, "issued token");
    drop(slot);
    Ok(body)
}

/// IMDS's success shape: every value a string.
fn token_body(vm: &VmContext, subject: &Subject, vm_id: Option<&str>, resource: &str) -> Value {
    let lifetime = vm.azure.imds_token_lifetime().as_secs();
    let now = ids::unix_now();
    let expires_on = now + lifetime;
    let access_token = jwt::mint(&TokenClaims {
        audience: resource,
        tenant_id: &subject.tenant_id,
        client_id: &subject.client_id,
        object_id: &subject.principal_id,
        mi_resource_id: Some(&subject.resource_id),
        vm_resource_id: vm_id,
        issued_at: now,
        expires_on,
    });
    json!({
        "access_token": access_token,
        "refresh_token": "",
        "expires_in": lifetime.to_string(),
        "expires_on": expires_on.to_string(),
        "ext_expires_in": lifetime.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": subject.client_id,
    })
}
