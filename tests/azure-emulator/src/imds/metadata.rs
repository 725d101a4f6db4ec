//! IMDS paths other than the token: instance document, versions, identity info, attested document.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::VmContext;
use super::error::ImdsError;
use super::rules::{self, API_VERSIONS};
use crate::ids;
use crate::state::AzureState;

/// What a metadata handler answers: JSON, or text for `format=text`.
enum Answer {
    Json(Value),
    Text(String),
}

/// Header rules, query rules and the metadata rate limit, then `build`.
fn answer(
    vm: &VmContext,
    method: &Method,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    needs_version: bool,
    build: impl FnOnce(&BTreeMap<String, String>) -> Result<Answer, ImdsError>,
) -> Response {
    let result = checked(vm, method, headers, raw_query, needs_version).and_then(|params| {
        let Some(params) = params else {
            return Ok(missing_version());
        };
        Ok(match build(&params)? {
            Answer::Json(v) => Json(v).into_response(),
            Answer::Text(t) => {
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], t).into_response()
            }
        })
    });
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The query when every rule passed; `None` when `api-version` is missing.
fn checked(
    vm: &VmContext,
    method: &Method,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    needs_version: bool,
) -> Result<Option<BTreeMap<String, String>>, ImdsError> {
    rules::check_request(method, headers)?;
    let params = rules::parse_query(raw_query)?;
    if needs_version {
        if !params.contains_key("api-version") {
            return Ok(None);
        }
        rules::check_api_version(&params)?;
    }
    vm.azure
        .admit_metadata_request(&vm.name)
        .map_err(ImdsError::throttled)?;
    Ok(Some(params))
}

/// IMDS's own answer to a metadata request without `api-version`: it lists
/// the newest versions instead of using the token endpoint's error shape.
fn missing_version() -> Response {
    let newest: Vec<&str> = API_VERSIONS.iter().rev().take(3).copied().collect();
    let body = json!({
        "error": "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds",
        "newest-versions": newest,
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub(super) async fn instance(
    State(vm): State<VmContext>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&vm, &method, &headers, q.as_deref(), true, |params| {
        let doc = document(&vm)?;
        Ok(render(doc, params))
    })
}

pub(super) async fn instance_path(
    State(vm): State<VmContext>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&vm, &method, &headers, q.as_deref(), true, |params| {
        let doc = document(&vm)?;
        // The raw path, not a `Path` extractor: that one answers plain text
        // on bad percent-encoding, and IMDS answers JSON.
        let rest = uri
            .path()
            .strip_prefix("/metadata/instance")
            .unwrap_or_default();
        let pointer = rest.trim_end_matches('/');
        let node = doc.pointer(pointer).cloned().ok_or_else(|| {
            ImdsError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "The requested path was not found",
            )
        })?;
        Ok(render(node, params))
    })
}

pub(super) async fn versions(
    State(vm): State<VmContext>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&vm, &method, &headers, q.as_deref(), false, |_| {
        Ok(Answer::Json(json!({ "apiVersions": API_VERSIONS })))
    })
}

pub(super) async fn identity_info(
    State(vm): State<VmContext>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&vm, &method, &headers, q.as_deref(), true, |_| {
        let tenant = vm.azure.read(|s| s.tenant_id.clone());
        Ok(Answer::Json(json!({ "tenantId": tenant })))
    })
}

/// A stub: the shape (`encoding`, `signature`) without a real PKCS#7
/// signature, which nothing in podid verifies.
pub(super) async fn attested(
    State(vm): State<VmContext>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&vm, &method, &headers, q.as_deref(), true, |params| {
        let doc = document(&vm)?;
        let compute = &doc["compute"];
        let now = ids::unix_now();
        let claims = json!({
            "nonce": params.get("nonce").cloned().unwrap_or_default(),
            "vmId": compute["vmId"],
            "subscriptionId": compute["subscriptionId"],
            "timeStamp": {"createdOn": ids::aad_timestamp(now), "expiresOn": ids::aad_timestamp(now + 21_600)},
        });
        let signature = STANDARD.encode(claims.to_string());
        Ok(Answer::Json(
            json!({"encoding": "pkcs7", "signature": signature}),
        ))
    })
}

fn document(vm: &VmContext) -> Result<Value, ImdsError> {
    vm.azure
        .read(|s| instance_document(s, &vm.name))
        .ok_or_else(|| {
            ImdsError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "This VM no longer exists",
            )
        })
}

fn render(node: Value, params: &BTreeMap<String, String>) -> Answer {
    let text = params.get("format").is_some_and(|f| f == "text");
    match node {
        Value::String(s) if text => Answer::Text(s),
        other if text && !other.is_object() && !other.is_array() => Answer::Text(other.to_string()),
        other => Answer::Json(other),
    }
}

/// The part of the instance document tests and podid read.
fn instance_document(state: &AzureState, name: &str) -> Option<Value> {
    let vm = state.vm(name)?;
    Some(json!({
        "compute": {
            "azEnvironment": "AzurePublicCloud",
            "location": state.location,
            "name": vm.name,
            "osType": "Linux",
            "provider": "Microsoft.Compute",
            "resourceGroupName": vm.resource_group,
            "resourceId": vm.resource_id,
            "subscriptionId": vm.subscription_id,
            "tagsList": [],
            "vmId": ids::stable_guid(&vm.resource_id.to_ascii_lowercase()),
            // Azure sends "" for a VM outside a scale set.
            "vmScaleSetName": vm.scale_set.clone().unwrap_or_default(),
            "vmSize": "Standard_D2s_v5",
            "zone": "",
        },
        "network": { "interface": [] },
    }))
}
