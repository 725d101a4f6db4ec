//! Well-formed but unsigned access tokens, and reading JWTs (tokens, client assertions) apart.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ring::digest;
use serde_json::{Value, json};

use crate::ids;

/// base64url without padding; decoding also accepts padding, as some JWT
/// libraries emit it.
pub const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A JWT split into its parts.
#[derive(Clone, Debug)]
pub struct Parts<'a> {
    /// Decoded header.
    pub header: Value,
    /// Decoded claims.
    pub claims: Value,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// Decoded signature.
    pub signature: Vec<u8>,
}

/// Why a JWT could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three dot-separated parts.
    #[error("not a JWT: expected header.payload.signature")]
    Shape,
    /// A part is not base64url.
    #[error("JWT part is not base64url")]
    Base64,
    /// Header or claims are not a JSON object.
    #[error("JWT header or claims are not a JSON object")]
    Json,
}

/// Splits and decodes a compact JWT.
pub fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Shape);
    };
    let header = decode_object(h)?;
    let claims = decode_object(p)?;
    let signature = B64URL.decode(s).map_err(|_| JwtError::Base64)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(Parts {
        header,
        claims,
        signing_input,
        signature,
    })
}

fn decode_object(part: &str) -> Result<Value, JwtError> {
    let bytes = B64URL.decode(part).map_err(|_| JwtError::Base64)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(JwtError::Json),
    }
}

/// The claims of a token the emulator issued (or any JWT); `Value::Null` if
/// `token` is not a JWT. Tests use it to see which identity, resource and
/// issue (`uti`) a token stands for.
pub fn decode_claims(token: &str) -> Value {
    split(token).map(|p| p.claims).unwrap_or(Value::Null)
}

/// What an issued access token says.
#[derive(Clone, Debug)]
pub struct TokenClaims<'a> {
    /// `aud`: the resource.
    pub audience: &'a str,
    /// `tid`.
    pub tenant_id: &'a str,
    /// `appid`.
    pub client_id: &'a str,
    /// `oid` and `sub`.
    pub object_id: &'a str,
    /// `xms_mirid` for managed identities.
    pub mi_resource_id: Option<&'a str>,
    /// `xms_az_rid`: the VM the token was asked from.
    pub vm_resource_id: Option<&'a str>,
    /// `iat` and `nbf`.
    pub issued_at: u64,
    /// `exp`.
    pub expires_on: u64,
}

/// Mints an access token: a compact JWT with a fake HS256 signature (SDKs do
/// not verify access tokens; resource servers are not emulated). Every token
/// has a unique `uti`, so tests tell a cached token from a fresh one.
pub fn mint(c: &TokenClaims<'_>) -> String {
    let header = json!({"typ": "JWT", "alg": "HS256", "kid": "podid-azure-emulator"});
    let mut claims = json!({
        "aud": c.audience,
        "iss": format!("https://sts.windows.net/{}/", c.tenant_id),
        "iat": c.issued_at,
        "nbf": c.issued_at,
        "exp": c.expires_on,
        "appid": c.client_id,
        "appidacr": "2",
        "idtyp": "app",
        "oid": c.object_id,
        "sub": c.object_id,
        "tid": c.tenant_id,
        "uti": B64URL.encode(ids::random_bytes::<16>()),
        "ver": "1.0",
    });
    if let (Some(id), Value::Object(map)) = (c.mi_resource_id, &mut claims) {
        // `xms_mirid` is Azure's claim; `xms_mi_res_id` is an alias for tests.
        map.insert("xms_mirid".into(), id.into());
        map.insert("xms_mi_res_id".into(), id.into());
    }
    if let (Some(id), Value::Object(map)) = (c.vm_resource_id, &mut claims) {
        map.insert("xms_az_rid".into(), id.into());
    }
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let sig = digest::digest(&digest::SHA256, signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(sig.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_decode_and_are_unique() {
        let c = TokenClaims {
            audience: "https://vault.azure.net",
            tenant_id: "t",
            client_id: "c",
            object_id: "o",
            mi_resource_id: Some("/x"),
            vm_resource_id: None,
            issued_at: 10,
            expires_on: 20,
        };
        let (a, b) = (mint(&c), mint(&c));
        let (ca, cb) = (decode_claims(&a), decode_claims(&b));
        assert_eq!(ca["aud"], "https://vault.azure.net");
        assert_eq!(ca["xms_mirid"], "/x");
        assert_eq!(ca["exp"], 20);
        assert_ne!(ca["uti"], cb["uti"]);
        assert_eq!(a.split('.').count(), 3);
    }

    #[test]
    fn garbage_decodes_to_null() {
        assert_eq!(decode_claims("nope"), Value::Null);
        assert_eq!(decode_claims("a.b.c"), Value::Null);
        assert_eq!(split("a.b.c.d").err(), Some(JwtError::Shape));
    }
}
