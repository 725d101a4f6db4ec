//! ARM bearer tokens from azure_identity: workload identity, client secret or managed identity, as [`crate::config::choose_credential`] chose.

use std::fmt;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use crate::arm::{TokenError, TokenSource};
use crate::config::{Credential, ManagedIdentityId};

/// The credential could not be built (bad tenant id, non-https authority host, …).
#[derive(Debug, thiserror::Error)]
#[error("setting up the {credential} credential: {source}")]
pub struct AuthError {
    /// Which credential.
    pub credential: &'static str,
    /// azure_identity's reason.
    pub source: azure_core::Error,
}

/// Tokens for one scope from one azure_identity credential.
///
/// azure_identity caches tokens and refreshes them 300 s before they expire,
/// so asking before every request costs nothing.
#[derive(Clone)]
pub struct AzureTokens {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    kind: &'static str,
}

impl fmt::Debug for AzureTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureTokens")
            .field("credential", &self.kind)
            .field("scope", &self.scope)
            .finish()
    }
}

fn client_options(authority_host: &str) -> ClientOptions {
    let mut custom = CustomConfiguration::default();
    custom.authority_host = authority_host.trim_end_matches('/').to_owned();
    ClientOptions {
        cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
        ..ClientOptions::default()
    }
}

fn workload_identity(
    client_id: &str,
    tenant_id: &str,
    token_file: &std::path::Path,
    authority_host: &str,
) -> azure_core::Result<Arc<WorkloadIdentityCredential>> {
    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: client_options(authority_host),
        },
        client_id: Some(client_id.to_owned()),
        tenant_id: Some(tenant_id.to_owned()),
        token_file_path: Some(token_file.to_owned()),
    }))
}

impl AzureTokens {
    /// Tokens for `scope` (e.g. `https://management.azure.com/.default`) with
    /// `credential`; Entra ID at `authority_host` (must be https; managed
    /// identity ignores it: IMDS is not configurable).
    pub fn new(
        credential: &Credential,
        authority_host: &str,
        scope: &str,
    ) -> Result<Self, AuthError> {
        let kind = credential.kind();
        let err = |source| AuthError {
            credential: kind,
            source,
        };
        let built: Arc<dyn TokenCredential> = match credential {
            Credential::WorkloadIdentity {
                client_id,
                tenant_id,
                token_file,
            } => {
                workload_identity(client_id, tenant_id, token_file, authority_host).map_err(err)?
            }
            Credential::ClientSecret {
                client_id,
                tenant_id,
                secret,
            } => ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(secret.0.clone()),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(authority_host),
                }),
            )
            .map_err(err)?,
            Credential::ManagedIdentity { id } => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: id.as_ref().map(|id| match id {
                        ManagedIdentityId::ClientId(c) => UserAssignedId::ClientId(c.clone()),
                        ManagedIdentityId::ResourceId(r) => UserAssignedId::ResourceId(r.clone()),
                    }),
                    ..ManagedIdentityCredentialOptions::default()
                }))
                .map_err(err)?
            }
        };
        Ok(Self {
            credential: built,
            scope: scope.to_owned(),
            kind,
        })
    }

    /// The scope tokens are asked for.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

impl TokenSource for AzureTokens {
    async fn token(&self) -> Result<String, TokenError> {
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| TokenError(format!("{} credential: {e}", self.kind)))?;
        Ok(token.token.secret().to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    /// reqwest (inside azure_core) panics without a process-wide provider, as in production.
    fn provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[test]
    fn a_plain_http_authority_host_is_refused() {
        provider();
        let c = Credential::ClientSecret {
            client_id: "a".into(),
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            secret: SecretString("s".into()),
        };
        let err = AzureTokens::new(
            &c,
            "http://login.example",
            "https://management.azure.com/.default",
        )
        .unwrap_err();
        assert_eq!(err.credential, "client_secret");
        assert!(AzureTokens::new(&c, "https://login.example", "x/.default").is_ok());
    }

    #[test]
    fn debug_output_names_the_credential_kind_only() {
        provider();
        let c = Credential::ManagedIdentity { id: None };
        let t = AzureTokens::new(&c, "https://login.microsoftonline.com", "s/.default").unwrap();
        assert_eq!(
            format!("{t:?}"),
            r#"AzureTokens { credential: "managed_identity", scope: "s/.default" }"#
        );
    }
}
