//! Azure AD's v2.0 token endpoint for service principals (types 1 and 2) and federated
//! identities (the pod's service-account token as assertion): the client-credentials grant over HTTPS.

use std::path::PathBuf;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::Full;
use podid_core::model::IdentityType;
use podid_core::proxy_config::ProxyIdentity;

use super::client::{self, Target, Tls};
use super::credential;
use super::error::{UpstreamError, status_error, token_from};
use crate::proxy::token::Token;

/// Azure AD's public-cloud authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const NAME: &str = "Azure AD";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A service principal's `authority` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("identity {identity:?}: authority {authority:?} {why}")]
pub struct AuthorityError {
    identity: String,
    authority: String,
    why: &'static str,
}

/// How a service principal proves itself.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Proof {
    Secret,
    Certificate,
    /// Workload identity federation: the projected service-account token at this path.
    Federated(PathBuf),
}

/// One service principal and where its tokens come from.
#[derive(Clone, Debug)]
pub struct ServicePrincipal {
    client_id: String,
    proof: Proof,
    secret_dir: PathBuf,
    host: String,
    port: u16,
    /// Path of the token endpoint.
    path: String,
    /// The token endpoint's URL: the `aud` of client assertions.
    url: String,
}

impl ServicePrincipal {
    /// The principal of `identity` (type 1 or 2), its authority defaulting to `default_authority`.
    pub fn new(identity: &ProxyIdentity, default_authority: &str) -> Result<Self, AuthorityError> {
        let authority = if identity.authority.is_empty() {
            default_authority
        } else {
            &identity.authority
        };
        let error = |why| AuthorityError {
            identity: identity.name.clone(),
            authority: authority.to_owned(),
            why,
        };
        let uri: Uri = authority.parse().map_err(|_| error("is not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(error(
                "is not https (the client secret or assertion would travel in clear)",
            ));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| error("has no host"))?;
        let prefix = uri.path().trim_end_matches('/');
        let path = format!("{prefix}/{}/oauth2/v2.0/token", identity.tenant_id);
        let base = authority
            .split('?')
            .next()
            .unwrap_or(authority)
            .trim_end_matches('/');
        Ok(Self {
            client_id: identity.client_id.clone(),
            proof: match identity.kind {
                _ if identity.is_federated() => {
                    Proof::Federated(PathBuf::from(&identity.token_file))
                }
                IdentityType::ServicePrincipalCertificate => Proof::Certificate,
                _ => Proof::Secret,
            },
            secret_dir: PathBuf::from(&identity.secret_dir),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or(443),
            url: format!("{base}/{}/oauth2/v2.0/token", identity.tenant_id),
            path,
        })
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> &str {
        &self.url
    }

    /// One attempt at a token for `resource`.
    pub async fn token(&self, tls: &Tls, resource: &str) -> Result<Token, UpstreamError> {
        let body = self.form(resource)?;
        let authority = match self.port {
            443 => self.host.clone(),
            port => format!("{}:{port}", self.host),
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| UpstreamError::Unreachable {
                upstream: NAME,
                message: format!("building the request: {e}"),
            })?;
        let target = Target::Tls {
            host: self.host.clone(),
            port: self.port,
            tls: tls.clone(),
        };
        let (status, headers, body) = client::fetch(&target, request)
            .await
            .map_err(|e| UpstreamError::unreachable(NAME, &e))?;
        if status == StatusCode::OK {
            token_from(NAME, &body)
        } else {
            Err(status_error(NAME, status, &headers, &body))
        }
    }

    /// The client-credentials form, with the secret or a fresh assertion.
    fn form(&self, resource: &str) -> Result<String, UpstreamError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("client_id", &self.client_id)
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &scope(resource));
        match &self.proof {
            Proof::Secret => {
                form.append_pair("client_secret", &credential::read_secret(&self.secret_dir)?);
            }
            Proof::Certificate => {
                let assertion =
                    credential::client_assertion(&self.secret_dir, &self.client_id, &self.url)?;
                form.append_pair("client_assertion_type", ASSERTION_TYPE)
                    .append_pair("client_assertion", &assertion);
            }
            Proof::Federated(path) => {
                let assertion = credential::read_federated_token(path)?;
                form.append_pair("client_assertion_type", ASSERTION_TYPE)
                    .append_pair("client_assertion", &assertion);
            }
        }
        Ok(form.finish())
    }
}

/// The v2.0 scope of a v1 resource. A resource ending in `/` keeps it
/// (`https://management.azure.com//.default`), as Azure AD documents, so the
/// token's audience is the resource as asked.
pub fn scope(resource: &str) -> String {
    if resource.ends_with("/.default") {
        resource.to_owned()
    } else {
        format!("{resource}/.default")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sp(authority: &str) -> Result<ServicePrincipal, AuthorityError> {
        let id: ProxyIdentity =
            format!("name=sp,type=1,client-id=c,tenant-id=t,secret-dir=/s{authority}")
                .parse()
                .unwrap();
        ServicePrincipal::new(&id, DEFAULT_AUTHORITY)
    }

    #[test]
    fn the_token_url_joins_authority_and_tenant_with_or_without_a_trailing_slash() {
        let default = sp("").unwrap();
        assert_eq!(
            default.token_url(),
            "https://login.microsoftonline.com/t/oauth2/v2.0/token"
        );
        assert_eq!(
            (default.host.as_str(), default.port),
            ("login.microsoftonline.com", 443)
        );
        let custom = sp(",authority=https://localhost:8443/").unwrap();
        assert_eq!(
            custom.token_url(),
            "https://localhost:8443/t/oauth2/v2.0/token"
        );
        assert_eq!(
            (custom.path.as_str(), custom.port),
            ("/t/oauth2/v2.0/token", 8443)
        );
        let prefixed = sp(",authority=https://login.example/aad").unwrap();
        assert_eq!(prefixed.path, "/aad/t/oauth2/v2.0/token");
    }

    #[test]
    fn plain_http_and_garbage_authorities_are_refused() {
        assert!(
            sp(",authority=http://localhost:1")
                .unwrap_err()
                .to_string()
                .contains("not https")
        );
        assert!(sp(",authority=not a url").is_err());
    }

    #[test]
    fn a_federated_identity_sends_the_token_file_read_afresh_as_its_assertion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let id: ProxyIdentity = format!(
            "name=f,type=0,client-id=c,tenant-id=t,token-file={}",
            path.display()
        )
        .parse()
        .unwrap();
        let sp = ServicePrincipal::new(&id, DEFAULT_AUTHORITY).unwrap();
        let err = sp.form("https://vault.azure.net").unwrap_err().to_string();
        assert!(err.contains("token"), "{err}");
        for token in ["first.jwt.x", "rotated.jwt.y"] {
            std::fs::write(&path, format!("{token}\n")).unwrap();
            let form: Vec<(String, String)> =
                form_urlencoded::parse(sp.form("https://vault.azure.net").unwrap().as_bytes())
                    .into_owned()
                    .collect();
            let get = |k: &str| {
                form.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("client_assertion"), Some(token));
            assert_eq!(get("client_assertion_type"), Some(ASSERTION_TYPE));
            assert_eq!(get("grant_type"), Some("client_credentials"));
            assert_eq!(get("scope"), Some("https://vault.azure.net/.default"));
            assert_eq!(get("client_secret"), None);
        }
        std::fs::write(&path, "  \n").unwrap();
        assert!(sp.form("r").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn scopes_get_one_default_suffix() {
        assert_eq!(
            scope("https://vault.azure.net"),
            "https://vault.azure.net/.default"
        );
        assert_eq!(
            scope("https://management.azure.com/"),
            "https://management.azure.com//.default"
        );
        assert_eq!(scope("api://x/.default"), "api://x/.default");
    }
}
