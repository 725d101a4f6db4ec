//! The request rules IMDS applies before anything else: method, headers, query parameters.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, StatusCode};

use super::error::ImdsError;
use crate::resolve::Selector;

/// API versions IMDS knows (from the published swagger); `/metadata/versions` lists them.
pub const API_VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2022-02-01",
    "2022-03-01",
    "2022-07-01",
    "2022-08-01",
    "2022-11-01",
    "2023-07-01",
];

/// The oldest version the managed-identity token path accepts.
const OLDEST_TOKEN_VERSION: &str = "2018-02-01";

/// A token request that passed the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenQuery {
    /// `api-version`.
    pub api_version: String,
    /// `resource`.
    pub resource: String,
    /// Which identity.
    pub selector: Selector,
}

/// Method and header rules shared by every IMDS path: only GET, no
/// `X-Forwarded-For` (IMDS refuses proxied requests), `Metadata: true`.
pub fn check_request(method: &Method, headers: &HeaderMap) -> Result<(), ImdsError> {
    if method != Method::GET {
        return Err(ImdsError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            format!("The HTTP method {method} is not allowed; use GET"),
        ));
    }
    if headers.contains_key("x-forwarded-for") {
        return Err(ImdsError::invalid_request(
            "Requests with an X-Forwarded-For header are not allowed",
        ));
    }
    let metadata = headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !metadata {
        return Err(ImdsError::invalid_request(
            "Required metadata header not specified",
        ));
    }
    Ok(())
}

/// Decodes a query string, refusing a parameter given twice (names compared
/// case-insensitively, so `Resource=a&resource=b` cannot smuggle a second value).
pub fn parse_query(raw: Option<&str>) -> Result<BTreeMap<String, String>, ImdsError> {
    let mut params = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(ImdsError::invalid_request(format!(
                "Duplicate query parameter '{name}'"
            )));
        }
        params.insert(name.into_owned(), value.into_owned());
    }
    Ok(params)
}

/// `api-version` must be present and one IMDS knows.
pub fn check_api_version(params: &BTreeMap<String, String>) -> Result<&str, ImdsError> {
    let version = params.get("api-version").ok_or_else(|| {
        ImdsError::invalid_request("Required query variable 'api-version' is missing")
    })?;
    if !API_VERSIONS.contains(&version.as_str()) {
        return Err(ImdsError::invalid_request(format!(
            "Bad request. api-version '{version}' is invalid. For more information refer to aka.ms/azureimds"
        )));
    }
    Ok(version)
}

/// The rules of `GET /metadata/identity/oauth2/token`'s query.
pub fn parse_token_query(raw: Option<&str>) -> Result<TokenQuery, ImdsError> {
    let params = parse_query(raw)?;
    let api_version = check_api_version(&params)?.to_owned();
    if api_version.as_str() < OLDEST_TOKEN_VERSION {
        return Err(ImdsError::invalid_request(format!(
            "api-version '{api_version}' does not support managed identity; use {OLDEST_TOKEN_VERSION} or later"
        )));
    }
    let resource = params
        .get("resource")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ImdsError::invalid_request("Required query variable 'resource' is missing"))?
        .clone();
    if !resource_is_plausible(&resource) {
        return Err(ImdsError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant."
            ),
        ));
    }
    let selector = selector(&params)?;
    Ok(TokenQuery {
        api_version,
        resource,
        selector,
    })
}

fn selector(params: &BTreeMap<String, String>) -> Result<Selector, ImdsError> {
    let given: Vec<Selector> = [
        ("client_id", Selector::ClientId as fn(String) -> Selector),
        ("object_id", Selector::ObjectId),
        ("msi_res_id", Selector::ResourceId),
        ("mi_res_id", Selector::ResourceId),
    ]
    .into_iter()
    .filter_map(|(name, make)| params.get(name).map(|v| make(v.clone())))
    .collect();
    match given.as_slice() {
        [] => Ok(Selector::Default),
        [one] => Ok(one.clone()),
        _ => Err(ImdsError::invalid_request(
            "Only one of client_id, object_id or msi_res_id (mi_res_id) may be specified",
        )),
    }
}

/// A resource is an absolute URI (`https://vault.azure.net`, `api://x`) or
/// an application id (GUID); anything else Azure AD cannot know.
fn resource_is_plausible(resource: &str) -> bool {
    let uri = resource.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
            && !rest.is_empty()
    });
    uri || is_guid(resource)
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn token_query_accepts_what_sdks_send() {
        let q = parse_token_query(Some(
            "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=abc",
        ))
        .unwrap();
        assert_eq!(q.resource, "https://vault.azure.net");
        assert_eq!(q.selector, Selector::ClientId("abc".into()));
    }

    #[test]
    fn mi_res_id_is_a_spelling_of_msi_res_id_and_both_conflict() {
        let base = "api-version=2019-08-01&resource=api://x";
        let q = parse_token_query(Some(&format!("{base}&mi_res_id=/r"))).unwrap();
        assert_eq!(q.selector, Selector::ResourceId("/r".into()));
        assert!(parse_token_query(Some(&format!("{base}&mi_res_id=/r&msi_res_id=/r"))).is_err());
    }

    #[test]
    fn duplicate_names_differing_in_case_are_refused() {
        let err = parse_query(Some("resource=a&Resource=b")).unwrap_err();
        assert_eq!(err.error, "invalid_request");
    }

    #[test]
    fn resources_must_look_like_uris_or_app_ids() {
        assert!(resource_is_plausible("https://management.azure.com/"));
        assert!(resource_is_plausible(
            "00000000-0000-0000-0000-000000000000"
        ));
        assert!(!resource_is_plausible("vault"));
        assert!(!resource_is_plausible("://x"));
    }
}
