//! The emulated Azure Resource Manager: GET and PATCH of VMs and scale sets (identity only), long-running operations, throttling, faults.
//!
//! Served over HTTPS only (the Azure SDKs refuse bearer tokens over plain
//! http). Paths are compared case-insensitively, as ARM does. A PATCH of
//! `identity` starts an operation that applies the whole change, or nothing,
//! when it ends; until then GET and IMDS show the identities as they were.

pub mod auth;
pub mod config;
mod control;
pub mod error;
pub mod path;
pub mod resource;
mod runtime;
pub mod update;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use self::auth::Caller;
use self::config::{ArmFault, ArmMethod, PatchAnswer};
pub use self::error::ArmError;
use self::path::{ArmPath, ResourceKind};
use self::runtime::OperationStatus;
pub use self::runtime::{ArmCounters, ArmRuntime};
use self::update::{UpdateContext, parse_update};
use crate::azure::Azure;
use crate::ids;
use crate::state::{IdentityUpdate, Target};

/// The ARM router (serve it over TLS).
pub fn router(azure: Azure) -> Router {
    Router::new().fallback(dispatch).with_state(azure)
}

/// One request as the handlers see it.
#[derive(Debug)]
struct Request {
    method: Method,
    headers: HeaderMap,
    query: BTreeMap<String, String>,
    body: Bytes,
    base: String,
}

async fn dispatch(
    State(azure): State<Azure>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let request = Request {
        base: format!("https://{host}"),
        method,
        headers,
        query,
        body: body.unwrap_or_default(),
    };
    let mut response = match ArmPath::parse(uri.path()) {
        Some(ArmPath::Resource {
            kind,
            id,
            group,
            name,
        }) => resource_request(&azure, &request, kind, &id, (&group, &name)).await,
        Some(ArmPath::Operation { id }) => operation_request(&azure, &request, &id).into_response(),
        None => ArmError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "The path '{}' is not served by the emulated ARM.",
                uri.path()
            ),
        )
        .into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&ids::random_guid()) {
        response.headers_mut().insert("x-ms-request-id", id);
    }
    response
}

/// api-version and bearer token, checked on every ARM request.
fn check_request(azure: &Azure, request: &Request) -> Result<Caller, ArmError> {
    match request.query.get("api-version") {
        None => {
            return Err(ArmError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        Some(v) if !is_api_version(v) => {
            return Err(ArmError::bad_request(
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{v}' is invalid. The supported versions are 'YYYY-MM-DD[-preview]'."
                ),
            ));
        }
        Some(_) => {}
    }
    let tenant = azure.read(|s| s.tenant_id.clone());
    auth::authenticate(&request.headers, azure.arm_config().check_tokens, &tenant)
}

/// `2024-07-01` or `2024-07-01-preview`.
fn is_api_version(v: &str) -> bool {
    let (date, rest) = v.split_at(v.len().min(10));
    let digits = date.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        _ => b.is_ascii_digit(),
    });
    date.len() == 10 && digits && (rest.is_empty() || rest == "-preview")
}

async fn resource_request(
    azure: &Azure,
    request: &Request,
    kind: ResourceKind,
    id: &str,
    (group, name): (&str, &str),
) -> Response {
    let method = match request.method {
        Method::PATCH => ArmMethod::Patch,
        _ => ArmMethod::Get,
    };
    let target = azure.read(|s| match kind {
        ResourceKind::Vm => s.vm_by_id(id).map(|vm| Target::Vm(vm.name.clone())),
        ResourceKind::ScaleSet => s
            .scale_set_by_id(id)
            .map(|ss| Target::ScaleSet(ss.name.clone())),
    });
    let result = match (&request.method, &target) {
        (m, _) if m != Method::GET && m != Method::PATCH => Err(method_not_allowed(m)),
        (_, None) => check_request(azure, request)
            .and_then(|_| Err(ArmError::resource_not_found(kind.segment(), name, group))),
        (_, Some(t)) => match check_request(azure, request) {
            Err(e) => Err(e),
            Ok(_) if method == ArmMethod::Get => get_resource(azure, t).await,
            Ok(caller) => patch_resource(azure, request, t, id, &caller).await,
        },
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    let left = azure.arm().remaining_header(method, target.as_ref());
    if let Some(value) = left.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response
            .headers_mut()
            .insert("x-ms-ratelimit-remaining-resource", value);
    }
    response
}

fn method_not_allowed(method: &Method) -> ArmError {
    ArmError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("The requested resource does not support http method '{method}'."),
    )
}

/// Waits out or answers an injected fault.
async fn injected(fault: ArmFault) -> ArmError {
    match fault {
        ArmFault::Answer(f) => ArmError::injected(f.status, f.retry_after),
        ArmFault::Hang(limit) => {
            tokio::time::sleep(limit).await;
            ArmError::injected(504, None)
        }
    }
}

async fn get_resource(azure: &Azure, target: &Target) -> Result<Response, ArmError> {
    let fault = azure.arm().admit(ArmMethod::Get, target);
    if let Some(fault) = fault {
        return Err(injected(fault).await);
    }
    azure.arm().throttle(ArmMethod::Get, target)?;
    let state = azure.arm().provisioning_state(target);
    let body = azure.read(|s| resource::resource_json(s, target, state));
    body.map(|b| Json(b).into_response()).ok_or_else(|| {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The resource was deleted.",
        )
    })
}

async fn patch_resource(
    azure: &Azure,
    request: &Request,
    target: &Target,
    id: &str,
    caller: &Caller,
) -> Result<Response, ArmError> {
    let fault = azure.arm().admit(ArmMethod::Patch, target);
    if let Some(fault) = fault {
        return Err(injected(fault).await);
    }
    azure.arm().throttle(ArmMethod::Patch, target)?;
    let config = azure.arm_config();
    let (update, projected) = validate_patch(azure, request, target, id, caller)?;
    let version = request
        .query
        .get("api-version")
        .cloned()
        .unwrap_or_default();
    let started = {
        let mut arm = azure.arm();
        match arm.running_on(target) {
            Some(running) => Err(running.to_owned()),
            None => Ok(arm.start(target, update)),
        }
    };
    let (operation, latency) = started.map_err(|running| {
        ArmError::operation_in_progress(&operation_url(azure, request, &running, &version))
    })?;
    spawn_completion(azure.clone(), operation.clone(), latency);
    let url = operation_url(azure, request, &operation, &version);
    let mut response = match config.patch_answer {
        PatchAnswer::Updating200 => Json(projected).into_response(),
        PatchAnswer::Accepted202 => StatusCode::ACCEPTED.into_response(),
    };
    let headers = response.headers_mut();
    let monitor = format!("{url}&monitor=true");
    for (name, value) in [("azure-asyncoperation", url), ("location", monitor)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// The change the body asks for, and the resource as it will look once applied
/// (the 200 answer shows it with `provisioningState: Updating`).
fn validate_patch(
    azure: &Azure,
    request: &Request,
    target: &Target,
    id: &str,
    caller: &Caller,
) -> Result<(Option<IdentityUpdate>, Option<serde_json::Value>), ArmError> {
    let unknown = azure.arm_config().unknown_identity;
    azure.read(|s| {
        let ctx = UpdateContext {
            state: s,
            target,
            resource_id: id,
            caller,
            unknown,
        };
        let update = parse_update(&ctx, &request.body)?;
        let mut after = s.clone();
        if let Some(u) = &update {
            let _ = after.apply_identity_update(target, u);
        }
        Ok((update, resource::resource_json(&after, target, "Updating")))
    })
}

fn operation_url(azure: &Azure, request: &Request, operation: &str, version: &str) -> String {
    let (sub, location) = azure.read(|s| (s.subscription_id.clone(), s.location.clone()));
    format!(
        "{}/subscriptions/{sub}/providers/Microsoft.Compute/locations/{location}/operations/{operation}?api-version={version}",
        request.base
    )
}

/// Applies the change after `latency`, unless the operation was told to fail.
fn spawn_completion(azure: Azure, operation: String, latency: Duration) {
    tokio::spawn(async move {
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let found = azure
            .arm()
            .operations
            .get(&operation)
            .map(|op| (op.target.clone(), op.update.clone(), op.fails));
        let Some((target, update, fails)) = found else {
            return;
        };
        // State first, then the status: whoever sees Succeeded sees the change.
        let status = match (fails, update) {
            (true, _) => OperationStatus::Failed,
            (false, None) => OperationStatus::Succeeded,
            (false, Some(u)) => match azure.write(|s| s.apply_identity_update(&target, &u)) {
                Ok(()) => OperationStatus::Succeeded,
                Err(_) => OperationStatus::Failed,
            },
        };
        azure.arm().finish(&operation, status);
    });
}

fn operation_request(azure: &Azure, request: &Request, id: &str) -> Result<Response, ArmError> {
    if request.method != Method::GET {
        return Err(method_not_allowed(&request.method));
    }
    check_request(azure, request)?;
    let op = azure.arm().operations.get(id).cloned();
    let Some(op) = op else {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The operation '{id}' was not found."),
        ));
    };
    let monitor = request
        .query
        .get("monitor")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if monitor && op.status == OperationStatus::InProgress {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    Ok(Json(op.status_json()).into_response())
}
