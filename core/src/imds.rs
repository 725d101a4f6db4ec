//! IMDS request rules (CONTRACT.md §4): which requests reach the token endpoint, and the errors IMDS would give.
//!
//! The proxy decides on the raw request target, before any decoding a router
//! would do, so that the token path can be reached exactly one way.

use std::collections::BTreeMap;

use serde::Serialize;

/// The oldest `api-version` the token endpoint accepts.
pub const MIN_API_VERSION: &str = "2018-02-01";

/// How a request names the identity it wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `client_id`.
    ClientId(String),
    /// `object_id` (principal id).
    ObjectId(String),
    /// `msi_res_id` or `mi_res_id`: the identity's ARM id.
    ResourceId(String),
}

/// A well-formed token request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// `api-version`.
    pub api_version: String,
    /// `resource` (audience).
    pub resource: String,
    /// The identity asked for; the pod's default when `None`.
    pub selector: Option<Selector>,
    /// `bypass_cache=true`.
    pub bypass_cache: bool,
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The token endpoint.
    Token(TokenRequest),
    /// Another IMDS path, forwarded as is (path and query exactly as received).
    Forward {
        /// The origin-form target, e.g. `/metadata/instance?api-version=2021-02-01`.
        target: String,
    },
}

/// An IMDS-shaped error: HTTP status and the JSON body `{error, error_description}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{status} {error}: {error_description}")]
pub struct ImdsError {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// OAuth-style error code.
    pub error: &'static str,
    /// What a person reads.
    pub error_description: String,
}

impl ImdsError {
    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self {
            status: 400,
            error: "invalid_request",
            error_description: description.into(),
        }
    }

    /// 403 `forbidden`.
    pub fn forbidden(description: impl Into<String>) -> Self {
        Self {
            status: 403,
            error: "forbidden",
            error_description: description.into(),
        }
    }

    /// Any other status with its code.
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            error_description: description.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"error":"internal_error"}"#.to_owned())
    }
}

/// The parts of a request head the rules look at.
#[derive(Clone, Debug)]
pub struct RequestHead<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The request target exactly as on the request line.
    pub target: &'a str,
    /// Values of every `Metadata` header (name matched case-insensitively).
    pub metadata: Vec<&'a str>,
    /// Whether an `X-Forwarded-For` header is present.
    pub forwarded_for: bool,
}

/// Classifies a request: the token endpoint, a path to forward, or an IMDS error.
///
/// # Guarantees
/// `Route::Token` is returned only for the path `/metadata/identity/oauth2/token`
/// written canonically (the `metadata` segment in any case); any other target that
/// looks like a token path, however encoded, is a 400.
pub fn classify(head: &RequestHead<'_>) -> Result<Route, ImdsError> {
    let (path, query) = head.target.split_once('?').unwrap_or((head.target, ""));
    check_canonical(path)?;
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let is_token = matches!(segments.as_slice(), [m, "identity", "oauth2", "token"] if m.eq_ignore_ascii_case("metadata"));
    if !is_token {
        let lower = path.to_ascii_lowercase();
        if lower.contains("oauth2") || lower.contains("token") {
            return Err(ImdsError::invalid_request(format!(
                "{path:?} is not the token endpoint; use /metadata/identity/oauth2/token"
            )));
        }
        if !lower.starts_with("/metadata/") {
            return Err(ImdsError::new(
                404,
                "not_found",
                format!("{path:?} is not an IMDS path"),
            ));
        }
    }
    check_headers(head)?;
    if !is_token {
        return Ok(Route::Forward {
            target: head.target.to_owned(),
        });
    }
    if head.method != "GET" {
        return Err(ImdsError::new(
            405,
            "method_not_allowed",
            "the token endpoint accepts GET only",
        ));
    }
    token_request(query).map(Route::Token)
}

/// Refuses every form a path can take besides the plain one: encodings, backslashes,
/// parameters, dot segments, empty segments, absolute-form targets.
fn check_canonical(path: &str) -> Result<(), ImdsError> {
    let refuse = |why: &str| {
        Err(ImdsError::invalid_request(format!(
            "request path {path:?} {why}; IMDS paths are plain"
        )))
    };
    if !path.starts_with('/') {
        return refuse("is not origin-form");
    }
    if path.contains(['%', '\\', ';']) || path.chars().any(|c| c.is_control() || c == ' ') {
        return refuse("has encoded, escaped or parameter characters");
    }
    if path.len() > 1
        && path
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return refuse("has empty or dot segments");
    }
    Ok(())
}

fn check_headers(head: &RequestHead<'_>) -> Result<(), ImdsError> {
    if head.forwarded_for {
        return Err(ImdsError::invalid_request(
            "requests with X-Forwarded-For are refused",
        ));
    }
    match head.metadata.as_slice() {
        ["true"] => Ok(()),
        [] => Err(ImdsError::invalid_request(
            "Required metadata header not specified",
        )),
        _ => Err(ImdsError::invalid_request(
            "Required metadata header must be exactly one 'Metadata: true'",
        )),
    }
}

fn token_request(query: &str) -> Result<TokenRequest, ImdsError> {
    let params = parse_query(query)?;
    let api_version = params.get("api-version").cloned().unwrap_or_default();
    if api_version.is_empty() {
        return Err(ImdsError::invalid_request(
            "Required query variable 'api-version' is missing",
        ));
    }
    if api_version
        .get(..10)
        .is_none_or(|date| date < MIN_API_VERSION)
        || !valid_version(&api_version)
    {
        return Err(ImdsError::invalid_request(format!(
            "Invalid api-version {api_version:?}; use {MIN_API_VERSION} or later"
        )));
    }
    let resource = params.get("resource").cloned().unwrap_or_default();
    if resource.trim().is_empty() {
        return Err(ImdsError::invalid_request(
            "Required query variable 'resource' is missing",
        ));
    }
    let selectors: Vec<Selector> = [
        ("client_id", 0),
        ("object_id", 1),
        ("msi_res_id", 2),
        ("mi_res_id", 2),
    ]
    .into_iter()
    .filter_map(|(key, kind)| {
        let v = params.get(key)?.clone();
        Some(match kind {
            0 => Selector::ClientId(v),
            1 => Selector::ObjectId(v),
            _ => Selector::ResourceId(v),
        })
    })
    .collect();
    if selectors.len() > 1 {
        return Err(ImdsError::invalid_request(
            "Only one of client_id, object_id, msi_res_id (mi_res_id) may be specified",
        ));
    }
    if selectors.iter().any(|s| matches!(s, Selector::ClientId(v) | Selector::ObjectId(v) | Selector::ResourceId(v) if v.is_empty())) {
        return Err(ImdsError::invalid_request("An identity parameter is empty"));
    }
    let bypass_cache = params
        .get("bypass_cache")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(TokenRequest {
        api_version,
        resource,
        selector: selectors.into_iter().next(),
        bypass_cache,
    })
}

fn valid_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Parses a query string, refusing duplicate parameters as IMDS does.
fn parse_query(query: &str) -> Result<BTreeMap<String, String>, ImdsError> {
    let mut params = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        if params.insert(k.clone(), v).is_some() {
            return Err(ImdsError::invalid_request(format!(
                "Duplicate query parameter {k:?}"
            )));
        }
    }
    Ok(params)
}

/// `application/x-www-form-urlencoded` decoding of one component.
fn decode(s: &str) -> Result<String, ImdsError> {
    let bad = || ImdsError::invalid_request("Malformed percent-encoding in query");
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next().ok_or_else(bad)?, bytes.next().ok_or_else(bad)?];
                let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| ImdsError::invalid_request("Query is not UTF-8"))
}

#[cfg(test)]
mod tests;
