//! ARM-shaped error answers: `{"error": {"code": …, "message": …}}` with the status and headers ARM sends.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An ARM error answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error.code`.
    pub code: &'static str,
    /// `error.message`.
    pub message: String,
    /// `error.target`, when ARM names the parameter.
    pub target: Option<Box<str>>,
    /// `error.details`.
    pub details: Option<Box<Value>>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` (401 answers).
    pub challenge: Option<Box<str>>,
}

impl ArmError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            target: None,
            details: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 `InvalidParameter` naming the parameter.
    pub fn invalid_parameter(message: impl Into<String>, target: &str) -> Self {
        Self {
            target: Some(target.into()),
            ..Self::bad_request("InvalidParameter", message)
        }
    }

    /// 404 `ResourceNotFound` for a VM or scale set.
    pub fn resource_not_found(kind: &str, name: &str, group: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource 'Microsoft.Compute/{kind}/{name}' under resource group '{group}' was not found. \
                 For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// 409 while another operation on the resource runs.
    pub fn operation_in_progress(operation_url: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AnotherOperationInProgress",
            format!(
                "Another operation on this or dependent resource is in progress. To retrieve status of \
                 the operation use uri: {operation_url}"
            ),
        )
    }

    /// `FailedIdentityOperation`: ARM's wrapper around the identity service's own answer.
    pub fn failed_identity_operation(status: StatusCode, resource_id: &str, inner: &str) -> Self {
        let word = match status {
            StatusCode::NOT_FOUND => "NotFound",
            _ => "BadRequest",
        };
        let inner = json!({"error": {"code": word, "message": inner}}).to_string();
        Self::new(
            status,
            "FailedIdentityOperation",
            format!(
                "Identity operation for resource '{resource_id}' failed with error 'Failed to perform \
                 resource identity operation. Status: '{word}'. Response: '{inner}'.'."
            ),
        )
    }

    /// 429 with `Retry-After`, naming the throttling policy that ran out.
    pub fn throttled(retry_after: u64, policy: &str, allowed: u64) -> Self {
        let detail = json!({"operationGroup": policy, "allowedRequestCount": allowed}).to_string();
        Self {
            retry_after: Some(retry_after),
            details: Some(Box::new(
                json!([{"code": "TooManyRequests", "target": policy, "message": detail}]),
            )),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "OperationNotAllowed",
                "The server rejected the request because too many requests have been received for \
                 this subscription.",
            )
        }
    }

    /// An injected failure with `status`.
    pub fn injected(status: u16, retry_after: Option<u64>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = match status.as_u16() {
            409 => (
                "AnotherOperationInProgress",
                "Another operation on this or dependent resource is in progress.",
            ),
            429 => (
                "OperationNotAllowed",
                "The server rejected the request because too many requests have been received for this subscription.",
            ),
            502 => ("BadGateway", "The gateway received an invalid response."),
            503 => (
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please retry later.",
            ),
            504 => (
                "GatewayTimeout",
                "The gateway did not receive a response from 'Microsoft.Compute' within the specified time period.",
            ),
            _ => (
                "InternalServerError",
                "An internal server error occurred. Please retry later.",
            ),
        };
        Self {
            retry_after,
            ..Self::new(status, code, message)
        }
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(target), Value::Object(map)) = (&self.target, &mut error) {
            map.insert("target".into(), target.to_string().into());
        }
        if let (Some(details), Value::Object(map)) = (self.details, &mut error) {
            map.insert("details".into(), *details);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
