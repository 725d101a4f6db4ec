//! IMDS-shaped error answers: `{"error": …, "error_description": …}`, never plain text.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An IMDS error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImdsError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error`.
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl ImdsError {
    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// Any status.
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    /// 429 with `Retry-After`.
    pub fn throttled(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests. The managed identity request rate or concurrency limit was exceeded.",
            )
        }
    }

    /// An injected fault with `status`.
    pub fn injected(status: u16, retry_after: Option<u64>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (error, description) = match status.as_u16() {
            404 => ("not_found", "IMDS is being updated. Retry later."),
            410 => (
                "gone",
                "IMDS is being updated and will be back within 70 seconds.",
            ),
            429 => ("too_many_requests", "Too many requests."),
            503 => (
                "service_unavailable",
                "The service is temporarily unavailable.",
            ),
            _ => ("unknown_error", "An unexpected error occurred."),
        };
        Self {
            retry_after,
            ..Self::new(status, error, description)
        }
    }
}

impl IntoResponse for ImdsError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
