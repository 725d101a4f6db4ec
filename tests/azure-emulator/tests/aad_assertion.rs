//! Azure AD certificate assertions over real sockets: thumbprints, claims, signatures, error codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::aad::*;
use common::*;
use podid_azure_emulator::{B64URL, decode_claims, ids};
use ring::digest;
use serde_json::json;

#[tokio::test]
async fn certificate_assertion_is_accepted_by_x5t_and_x5t_s256() {
    let e = start_aad().await;
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t": x5t()});
    let r = with_assertion(
        &e,
        CERT_CLIENT,
        &assertion(SP_KEY, header, good_claims(&e, CERT_CLIENT)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        decode_claims(r.json()["access_token"].as_str().unwrap())["appid"],
        CERT_CLIENT
    );
    let s256 = B64URL.encode(digest::digest(&digest::SHA256, &der(SP_CERT)));
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t#S256": s256});
    let r = with_assertion(
        &e,
        CERT_CLIENT,
        &assertion(SP_KEY, header, good_claims(&e, CERT_CLIENT)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn bad_assertions_are_refused_with_700027_or_700024() {
    let e = start_aad().await;
    let header = json!({"alg": "RS256", "x5t": x5t()});
    let mut wrong_aud = good_claims(&e, CERT_CLIENT);
    wrong_aud["aud"] = json!("https://login.microsoftonline.com/x/oauth2/v2.0/token");
    let mut wrong_iss = good_claims(&e, CERT_CLIENT);
    wrong_iss["iss"] = json!(SP_CLIENT);
    let mut no_exp = good_claims(&e, CERT_CLIENT);
    no_exp.as_object_mut().unwrap().remove("exp");
    let other_key = assertion(OTHER_KEY, header.clone(), good_claims(&e, CERT_CLIENT));
    let unknown_thumb = json!({"alg": "RS256", "x5t": B64URL.encode([7u8; 20])});
    let no_thumb = json!({"alg": "RS256"});
    let hs256 = json!({"alg": "HS256", "x5t": x5t()});
    let cases = [
        assertion(SP_KEY, header.clone(), wrong_aud),
        assertion(SP_KEY, header.clone(), wrong_iss),
        assertion(SP_KEY, header.clone(), no_exp),
        other_key,
        assertion(SP_KEY, unknown_thumb, good_claims(&e, CERT_CLIENT)),
        assertion(SP_KEY, no_thumb, good_claims(&e, CERT_CLIENT)),
        assertion(SP_KEY, hs256, good_claims(&e, CERT_CLIENT)),
        "not-a-jwt".to_owned(),
    ];
    for (i, case) in cases.iter().enumerate() {
        let r = with_assertion(&e, CERT_CLIENT, case).await;
        assert_eq!(r.status, 401, "case {i}: {}", r.body);
        assert_aad_error(&r, 401, "invalid_client", 700_027);
    }
    let mut expired = good_claims(&e, CERT_CLIENT);
    expired["exp"] = json!(ids::unix_now() - 3600);
    let r = with_assertion(&e, CERT_CLIENT, &assertion(SP_KEY, header, expired)).await;
    assert_aad_error(&r, 401, "invalid_client", 700_024);
}

#[tokio::test]
async fn thumbprint_only_registration_checks_structure_not_signature() {
    let e = start_aad().await;
    let header = json!({"alg": "RS256", "x5t": x5t()});
    let r = with_assertion(
        &e,
        THUMB_CLIENT,
        &assertion(OTHER_KEY, header.clone(), good_claims(&e, THUMB_CLIENT)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = with_assertion(
        &e,
        THUMB_CLIENT,
        &assertion(SP_KEY, header, good_claims(&e, CERT_CLIENT)),
    )
    .await;
    assert_aad_error(&r, 401, "invalid_client", 700_027);
}
