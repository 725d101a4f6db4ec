//! Azure AD's error shape: `error`, an `AADSTSnnnnn:` description, `error_codes`, trace and correlation ids.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ids;

/// An Azure AD error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AadError {
    /// HTTP status (400, or 401 for `invalid_client`).
    pub status: StatusCode,
    /// OAuth `error`.
    pub error: &'static str,
    /// The AADSTS number.
    pub code: u32,
    /// Text after `AADSTSnnnnn: `.
    pub message: String,
    /// `Retry-After` seconds (injected faults).
    pub retry_after: Option<u64>,
}

impl AadError {
    /// 400 with `error` and AADSTS `code`.
    pub fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    /// 401 `invalid_client` with AADSTS `code`.
    pub fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    /// Any status.
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A missing form field (AADSTS900144).
    pub fn missing(field: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{field}'."),
        )
    }

    /// Unknown tenant (AADSTS90002).
    pub fn unknown_tenant(tenant: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        )
    }
}

impl IntoResponse for AadError {
    fn into_response(self) -> Response {
        let trace_id = ids::random_guid();
        let correlation_id = ids::random_guid();
        let timestamp = ids::aad_timestamp(ids::unix_now());
        let description = format!(
            "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
            self.code, self.message
        );
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
