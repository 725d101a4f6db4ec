//! Why an upstream call failed, which failures are worth another attempt, and reading upstream's answers.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::client::HttpError;
use super::credential::CredentialError;
use crate::proxy::retry::{Retryable, parse_retry_after};
use crate::proxy::token::Token;

/// Why an upstream call failed. Cloneable: every request that waited for the
/// fetch gets the same error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The attempt (or the whole deadline) ran out.
    #[error("upstream did not answer in time")]
    Timeout,
    /// No connection, TLS or HTTP exchange.
    #[error("{upstream} unreachable: {message}")]
    Unreachable {
        /// `IMDS` or `Azure AD`.
        upstream: &'static str,
        /// What failed.
        message: String,
    },
    /// IMDS does not know the identity: not assigned to the node (yet).
    #[error("IMDS: identity not found on this node")]
    NotAssigned,
    /// An answer other than 200.
    #[error("{upstream} answered {status}: {error}: {description}")]
    Status {
        /// `IMDS` or `Azure AD`.
        upstream: &'static str,
        /// HTTP status.
        status: u16,
        /// Upstream's `error`.
        error: String,
        /// Upstream's `error_description`.
        description: String,
        /// Upstream's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// A 200 whose body is no token.
    #[error("{upstream} answered 200 without a usable token: {message}")]
    Malformed {
        /// `IMDS` or `Azure AD`.
        upstream: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The service principal's secret or certificate, or the federated token file, cannot be used.
    #[error("credential: {0}")]
    Credential(String),
}

impl UpstreamError {
    /// A failed exchange with `upstream`.
    pub fn unreachable(upstream: &'static str, error: &HttpError) -> Self {
        Self::Unreachable {
            upstream,
            message: error.to_string(),
        }
    }

    /// Metric label: the status class or failure kind.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable { .. } => "unreachable",
            Self::NotAssigned => "4xx",
            Self::Status { status, .. } if *status >= 500 => "5xx",
            Self::Status { .. } => "4xx",
            Self::Malformed { .. } => "malformed",
            Self::Credential(_) => "credential",
        }
    }
}

impl From<CredentialError> for UpstreamError {
    fn from(e: CredentialError) -> Self {
        Self::Credential(e.to_string())
    }
}

impl Retryable for UpstreamError {
    fn retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Unreachable { .. } => true,
            Self::Status { status, .. } => matches!(status, 404 | 410 | 429 | 500..=599),
            Self::NotAssigned | Self::Malformed { .. } | Self::Credential(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn timed_out() -> Self {
        Self::Timeout
    }
}

/// The error of a non-200 answer: upstream's own `error` / `error_description`
/// when the body is the usual JSON, else a short excerpt of it.
pub fn status_error(
    upstream: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &Bytes,
) -> UpstreamError {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
    let error = text("error").unwrap_or_else(|| "unknown_error".to_owned());
    let description = text("error_description").unwrap_or_else(|| excerpt(body));
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    UpstreamError::Status {
        upstream,
        status: status.as_u16(),
        error,
        description,
        retry_after,
    }
}

fn excerpt(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.is_empty() {
        "(no description)".to_owned()
    } else {
        text
    }
}

/// A token from a 200 answer of IMDS (strings) or Azure AD (numbers).
pub fn token_from(upstream: &'static str, body: &Bytes) -> Result<Token, UpstreamError> {
    let malformed = |message: &str| UpstreamError::Malformed {
        upstream,
        message: message.to_owned(),
    };
    let json: Value = serde_json::from_slice(body).map_err(|_| malformed("not JSON"))?;
    let access_token = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("no access_token"))?;
    Token::received(
        access_token.to_owned(),
        number(&json, "expires_on"),
        number(&json, "expires_in"),
        number(&json, "ext_expires_in"),
        number(&json, "not_before"),
    )
    .ok_or_else(|| malformed("neither expires_on nor expires_in"))
}

/// A non-negative integer given as a JSON number or a numeric string.
fn number(json: &Value, key: &str) -> Option<u64> {
    match json.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn imds_strings_and_aad_numbers_both_make_tokens() {
        let imds = Bytes::from(
            r#"{"access_token":"a.b.c","expires_on":"1900000000","expires_in":"86399","not_before":"1899913600"}"#,
        );
        let t = token_from("IMDS", &imds).unwrap();
        assert_eq!((t.expires_on, t.not_before), (1_900_000_000, 1_899_913_600));
        let aad = Bytes::from(
            r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"x"}"#,
        );
        assert!(token_from("Azure AD", &aad).unwrap().expires_on > 3599);
        for bad in [r#"{"expires_in":1}"#, r#"{"access_token":"x"}"#, "<html>"] {
            assert!(matches!(
                token_from("IMDS", &Bytes::from(bad)),
                Err(UpstreamError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn error_answers_keep_upstreams_words_and_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "3".parse().unwrap());
        let body =
            Bytes::from(r#"{"error":"invalid_resource","error_description":"AADSTS500011"}"#);
        let e = status_error("IMDS", StatusCode::TOO_MANY_REQUESTS, &headers, &body);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.retryable());
        assert!(e.to_string().contains("AADSTS500011"));
        let plain = status_error(
            "IMDS",
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            &Bytes::from("nope\n"),
        );
        assert!(!plain.retryable());
        assert!(plain.to_string().contains("unknown_error: nope"));
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let status = |status| UpstreamError::Status {
            upstream: "IMDS",
            status,
            error: String::new(),
            description: String::new(),
            retry_after: None,
        };
        for s in [404, 410, 429, 500, 503, 599] {
            assert!(status(s).retryable(), "{s}");
        }
        for s in [400, 401, 403, 405] {
            assert!(!status(s).retryable(), "{s}");
        }
        assert!(!UpstreamError::NotAssigned.retryable());
        assert!(UpstreamError::Timeout.retryable());
    }
}
