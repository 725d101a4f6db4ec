//! What the pod gets back: IMDS's token shape, and IMDS-shaped JSON errors (never plain text).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use podid_core::imds::ImdsError;
use serde_json::json;

use super::retry::Retryable;
use super::token::{Token, unix_now};
use super::upstream::UpstreamError;

/// Body of every answer: built here, or streamed from IMDS.
pub type Body = Either<Full<Bytes>, Incoming>;

/// IMDS's own content type.
const JSON: &str = "application/json; charset=utf-8";

/// `Retry-After` when an identity is not on the node yet: the controller
/// usually assigns it within a minute, and SDKs retry 503s.
const NOT_ASSIGNED_RETRY_SECS: u64 = 5;

/// `Retry-After` for a throttled upstream that gave none.
const THROTTLED_RETRY_SECS: u64 = 5;

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// HTTP status.
    pub status: u16,
    /// `error`.
    pub error: String,
    /// `error_description`.
    pub description: String,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl From<ImdsError> for ErrorReply {
    fn from(e: ImdsError) -> Self {
        Self::new(e.status, e.error, e.error_description)
    }
}

impl ErrorReply {
    /// An error without `Retry-After`.
    pub fn new(status: u16, error: &str, description: impl Into<String>) -> Self {
        Self {
            status,
            error: error.to_owned(),
            description: description.into(),
            retry_after: None,
        }
    }

    /// The answer for a fetch that failed for identity `name`.
    pub fn upstream(e: &UpstreamError, name: &str) -> Self {
        match e {
            UpstreamError::NotAssigned => Self {
                retry_after: Some(NOT_ASSIGNED_RETRY_SECS),
                ..Self::new(
                    503,
                    "temporarily_unavailable",
                    format!("identity {name:?} is not assigned to this node yet; retry shortly"),
                )
            },
            UpstreamError::Status { status: 429, .. } => Self {
                retry_after: Some(e.retry_after().map_or(THROTTLED_RETRY_SECS, |d| {
                    d.as_secs_f64().ceil().max(1.0) as u64
                })),
                ..Self::new(
                    429,
                    "too_many_requests",
                    format!("upstream throttled the token request for {name:?}: {e}"),
                )
            },
            UpstreamError::Status {
                status,
                error,
                description,
                ..
            } if *status < 500 && !e.retryable() => {
                // Upstream's own verdict on the request (a bad resource, say): pass it on.
                Self::new(*status, error, description.clone())
            }
            UpstreamError::Timeout => {
                Self::new(504, "gateway_timeout", format!("token for {name:?}: {e}"))
            }
            UpstreamError::Credential(_) => Self::new(
                500,
                "credential_unavailable",
                format!("token for {name:?}: {e}"),
            ),
            _ => Self::new(502, "bad_gateway", format!("token for {name:?}: {e}")),
        }
    }

    /// The JSON answer.
    pub fn into_response(self) -> Response<Body> {
        let body = json!({"error": self.error, "error_description": self.description}).to_string();
        let mut response = json_response(self.status, body);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// IMDS's success shape, every value a string; `expires_in` is what is left now.
pub fn token_response(token: &Token, resource: &str, client_id: &str) -> Response<Body> {
    let now = unix_now();
    let body = json!({
        "access_token": token.access_token,
        "refresh_token": "",
        "expires_in": token.expires_in(now).to_string(),
        "expires_on": token.expires_on.to_string(),
        "ext_expires_in": token.ext_expires_on.saturating_sub(now).to_string(),
        "not_before": token.not_before.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": client_id,
    });
    json_response(200, body.to_string())
}

/// A JSON answer with `status`.
pub fn json_response(status: u16, body: String) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> UpstreamError {
        UpstreamError::Status {
            upstream: "IMDS",
            status,
            error: "invalid_resource".into(),
            description: "AADSTS500011: no such resource".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn upstream_failures_map_to_imds_statuses() {
        let r = ErrorReply::upstream(&UpstreamError::NotAssigned, "a");
        assert_eq!((r.status, r.retry_after), (503, Some(5)));
        let r = ErrorReply::upstream(&status(429, Some(7)), "a");
        assert_eq!((r.status, r.retry_after), (429, Some(7)));
        assert_eq!(
            ErrorReply::upstream(&status(429, None), "a").retry_after,
            Some(5)
        );
        assert_eq!(ErrorReply::upstream(&status(500, None), "a").status, 502);
        assert_eq!(ErrorReply::upstream(&status(410, None), "a").status, 502);
        assert_eq!(
            ErrorReply::upstream(&UpstreamError::Timeout, "a").status,
            504
        );
        let passed = ErrorReply::upstream(&status(400, None), "a");
        assert_eq!(
            (passed.status, passed.error.as_str()),
            (400, "invalid_resource")
        );
    }

    #[test]
    fn errors_are_json_with_retry_after() {
        let mut r = ErrorReply::new(429, "too_many_requests", "slow down");
        r.retry_after = Some(3);
        let response = r.into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
}
