//! The token-path rules, including a corpus of bypass attempts.
#![allow(clippy::unwrap_used)]

use super::*;

const Q: &str = "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

fn head<'a>(target: &'a str) -> RequestHead<'a> {
    RequestHead {
        method: "GET",
        target,
        metadata: vec!["true"],
        forwarded_for: false,
    }
}

fn token(target: &str) -> Result<TokenRequest, ImdsError> {
    match classify(&head(target))? {
        Route::Token(t) => Ok(t),
        Route::Forward { target } => panic!("forwarded {target}"),
    }
}

#[test]
fn canonical_token_request_is_parsed() {
    let t = token(&format!(
        "/metadata/identity/oauth2/token?{Q}&client_id=abc"
    ))
    .unwrap();
    assert_eq!(t.resource, "https://vault.azure.net");
    assert_eq!(t.api_version, "2018-02-01");
    assert_eq!(t.selector, Some(Selector::ClientId("abc".into())));
    assert!(!t.bypass_cache);
}

#[test]
fn metadata_segment_is_case_insensitive_and_nothing_else_is() {
    assert!(token(&format!("/METADATA/identity/oauth2/token?{Q}")).is_ok());
    assert!(token(&format!("/Metadata/identity/oauth2/token?{Q}")).is_ok());
    for path in [
        "/metadata/Identity/oauth2/token",
        "/metadata/identity/OAuth2/token",
        "/metadata/identity/oauth2/Token",
    ] {
        let err = classify(&head(&format!("{path}?{Q}"))).unwrap_err();
        assert_eq!((err.status, err.error), (400, "invalid_request"), "{path}");
    }
}

#[test]
fn bypass_corpus_is_refused_with_400() {
    let corpus = [
        "/metadata/identity/oauth2/token/",
        "/metadata/identity/oauth2/token/.",
        "/metadata/identity/oauth2//token",
        "//metadata/identity/oauth2/token",
        "/metadata//identity/oauth2/token",
        "/metadata/identity%2Foauth2%2Ftoken",
        "/metadata/identity%2foauth2%2ftoken",
        "/metadata/identity/oauth2/%74oken",
        "/metadata/identity/oauth2/token%00",
        "/metadata/identity/oauth2/token%2F",
        "/metadata/identity/oauth2%252Ftoken",
        "/metadata\\identity\\oauth2\\token",
        "/metadata/identity\\oauth2/token",
        "/metadata/./identity/oauth2/token",
        "/metadata/instance/../identity/oauth2/token",
        "/metadata/identity/oauth2/token/..",
        "/metadata/identity/oauth2/token;x=y",
        "/metadata/identity;/oauth2/token",
        "/metadata/identity/oauth2/token.json",
        "/metadata/identity/oauth2/tokens",
        "/metadata/identity/oauth2",
        "/metadata/identity/oauth2/",
        "/identity/oauth2/token",
        "/metadata/IDENTITY/OAUTH2/TOKEN",
        "/metadata/identity/oauth2/token\t",
        "http://169.254.169.254/metadata/identity/oauth2/token",
        "HTTP://169.254.169.254/metadata/identity/oauth2/token",
        "//169.254.169.254/metadata/identity/oauth2/token",
        "*",
        "169.254.169.254:80",
    ];
    for path in corpus {
        let target = format!("{path}?{Q}");
        let err = classify(&head(&target)).unwrap_err();
        assert_eq!(err.status, 400, "{path}: {err}");
        assert_eq!(err.error, "invalid_request", "{path}");
    }
}

#[test]
fn other_imds_paths_are_forwarded_exactly() {
    for target in [
        "/metadata/instance?api-version=2021-02-01",
        "/metadata/identity/info?api-version=2018-02-01",
        "/metadata/versions",
    ] {
        assert_eq!(
            classify(&head(target)).unwrap(),
            Route::Forward {
                target: target.to_owned()
            }
        );
    }
    let err = classify(&head("/latest/meta-data")).unwrap_err();
    assert_eq!(err.status, 404);
}

#[test]
fn header_rules_apply_to_every_path() {
    let target = format!("/metadata/identity/oauth2/token?{Q}");
    let mut h = head(&target);
    h.metadata = vec![];
    let err = classify(&h).unwrap_err();
    assert_eq!(
        (err.status, err.error_description.as_str()),
        (400, "Required metadata header not specified")
    );
    h.metadata = vec!["True"];
    assert_eq!(classify(&h).unwrap_err().status, 400);
    h.metadata = vec!["true", "true"];
    assert_eq!(classify(&h).unwrap_err().status, 400);
    let mut h = head("/metadata/instance?api-version=2021-02-01");
    h.forwarded_for = true;
    assert_eq!(classify(&h).unwrap_err().status, 400);
    let mut h = head(&target);
    h.method = "POST";
    assert_eq!(classify(&h).unwrap_err().status, 405);
}

#[test]
fn query_rules_follow_imds() {
    let cases = [
        ("resource=x", "api-version"),
        ("api-version=2017-12-01&resource=x", "Invalid api-version"),
        ("api-version=latest&resource=x", "Invalid api-version"),
        ("api-version=2018-02-01", "resource"),
        ("api-version=2018-02-01&resource=", "resource"),
        ("api-version=2018-02-01&resource=x&resource=y", "Duplicate"),
        (
            "api-version=2018-02-01&resource=x&client_id=a&object_id=b",
            "Only one",
        ),
        (
            "api-version=2018-02-01&resource=x&msi_res_id=a&mi_res_id=b",
            "Only one",
        ),
        ("api-version=2018-02-01&resource=x&client_id=", "empty"),
        ("api-version=2018-02-01&resource=%zz", "percent"),
    ];
    for (query, needle) in cases {
        let err = token(&format!("/metadata/identity/oauth2/token?{query}")).unwrap_err();
        assert_eq!(err.status, 400, "{query}");
        assert!(
            err.error_description.contains(needle),
            "{query}: {}",
            err.error_description
        );
    }
    let t = token("/metadata/identity/oauth2/token?api-version=2019-08-01&resource=x&mi_res_id=%2Fsub&bypass_cache=true").unwrap();
    assert_eq!(t.selector, Some(Selector::ResourceId("/sub".into())));
    assert!(t.bypass_cache);
}

#[test]
fn error_body_is_imds_json() {
    let body = ImdsError::forbidden("nope").body();
    assert_eq!(body, r#"{"error":"forbidden","error_description":"nope"}"#);
}
