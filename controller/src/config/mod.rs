//! Azure settings: the cloud config file (`azure.json`), the cloud's endpoints, and which credential the controller uses.
//!
//! `azure.json` is read as cloud-provider-azure and aad-pod-identity read it:
//! JSON (or YAML) with field names matched case-insensitively (Go's
//! `encoding/json`), unknown fields ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why the Azure settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cloud config file could not be read.
    #[error("reading the cloud config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It is neither JSON nor YAML, or not an object.
    #[error("the cloud config {path} is not a JSON or YAML object: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A cloud without known endpoints and no override for them.
    #[error(
        "cloud {0:?} has no built-in endpoints: set --arm-endpoint and --authority-host (and --arm-scope)"
    )]
    UnknownCloud(String),
    /// The cloud config names a service-principal certificate, which is not supported.
    #[error(
        "the cloud config's service principal uses a certificate (aadClientCertPath {0:?}), which \
         podid-controller does not support; give it aadClientSecret, a managed identity \
         (useManagedIdentityExtension) or workload identity (--federated-token-file)"
    )]
    CertificateUnsupported(String),
    /// A chosen credential lacks a field.
    #[error("{credential} needs {missing}")]
    Incomplete {
        /// Which credential.
        credential: &'static str,
        /// What is missing, as the user would set it.
        missing: &'static str,
    },
}

/// The fields of `azure.json` the controller reads.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CloudConfig {
    /// `cloud`: `AzurePublicCloud`, `AzureUSGovernmentCloud`, `AzureChinaCloud`, … (empty: public).
    pub cloud: String,
    /// `tenantId`.
    pub tenant_id: String,
    /// `subscriptionId`.
    pub subscription_id: String,
    /// `resourceGroup` (the node resource group).
    pub resource_group: String,
    /// `vmType`: `vmss` or `standard`.
    pub vm_type: String,
    /// `aadClientId` (`msi` on managed-identity clusters).
    pub aad_client_id: String,
    /// `aadClientSecret` (`msi` on managed-identity clusters). Never logged.
    pub aad_client_secret: String,
    /// `useManagedIdentityExtension`.
    pub use_managed_identity_extension: bool,
    /// `userAssignedIdentityID`: the kubelet identity (client id, or resource id).
    pub user_assigned_identity_id: String,
    /// `useFederatedWorkloadIdentityExtension`.
    pub use_federated_workload_identity_extension: bool,
    /// `aadFederatedTokenFile`.
    pub aad_federated_token_file: String,
    /// `resourceManagerEndpoint` (Azure Stack).
    pub resource_manager_endpoint: String,
    /// `aadClientCertPath`: a service principal certificate, which the controller cannot use.
    pub aad_client_cert_path: String,
}

impl fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudConfig")
            .field("cloud", &self.cloud)
            .field("tenant_id", &self.tenant_id)
            .field("subscription_id", &self.subscription_id)
            .field("resource_group", &self.resource_group)
            .field("vm_type", &self.vm_type)
            .field("aad_client_id", &self.aad_client_id)
            .field("aad_client_secret", &redacted(&self.aad_client_secret))
            .field(
                "use_managed_identity_extension",
                &self.use_managed_identity_extension,
            )
            .field("user_assigned_identity_id", &self.user_assigned_identity_id)
            .field(
                "use_federated_workload_identity_extension",
                &self.use_federated_workload_identity_extension,
            )
            .field("aad_federated_token_file", &self.aad_federated_token_file)
            .field("resource_manager_endpoint", &self.resource_manager_endpoint)
            .field("aad_client_cert_path", &self.aad_client_cert_path)
            .finish()
    }
}

fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

impl CloudConfig {
    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the text of a cloud config.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(json) => {
                serde_yaml::from_str(text).map_err(|yaml| format!("{json}; as YAML: {yaml}"))?
            }
        };
        let Value::Object(map) = value else {
            return Err("the top level is not an object".into());
        };
        let fields: BTreeMap<String, Value> = map
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let text = |name: &str| match fields.get(&name.to_ascii_lowercase()) {
            Some(Value::String(s)) => s.trim().to_owned(),
            _ => String::new(),
        };
        let flag = |name: &str| match fields.get(&name.to_ascii_lowercase()) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        Ok(Self {
            cloud: text("cloud"),
            tenant_id: text("tenantId"),
            subscription_id: text("subscriptionId"),
            resource_group: text("resourceGroup"),
            vm_type: text("vmType"),
            aad_client_id: text("aadClientId"),
            aad_client_secret: text("aadClientSecret"),
            aad_client_cert_path: text("aadClientCertPath"),
            use_managed_identity_extension: flag("useManagedIdentityExtension"),
            user_assigned_identity_id: text("userAssignedIdentityID"),
            use_federated_workload_identity_extension: flag(
                "useFederatedWorkloadIdentityExtension",
            ),
            aad_federated_token_file: text("aadFederatedTokenFile"),
            resource_manager_endpoint: text("resourceManagerEndpoint"),
        })
    }
}

/// A cloud's endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Azure Resource Manager.
    pub arm: String,
    /// Entra ID authority host.
    pub authority_host: String,
    /// The token scope for ARM.
    pub arm_scope: String,
}

impl Endpoints {
    /// The built-in endpoints of a cloud named as `azure.json` names it (empty: public).
    pub fn of_cloud(name: &str) -> Option<Self> {
        let (arm, authority) = match name.to_ascii_lowercase().as_str() {
            "" | "azurepubliccloud" | "azurecloud" | "public" => (
                "https://management.azure.com",
                "https://login.microsoftonline.com",
            ),
            "azureusgovernmentcloud" | "azureusgovernment" => (
                "https://management.usgovcloudapi.net",
                "https://login.microsoftonline.us",
            ),
            "azurechinacloud" => (
                "https://management.chinacloudapi.cn",
                "https://login.chinacloudapi.cn",
            ),
            _ => return None,
        };
        Some(Self {
            arm: arm.into(),
            authority_host: authority.into(),
            arm_scope: format!("{arm}/.default"),
        })
    }
}

/// Endpoint overrides from flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    /// `--arm-endpoint`.
    pub arm: Option<String>,
    /// `--authority-host`.
    pub authority_host: Option<String>,
    /// `--arm-scope`.
    pub arm_scope: Option<String>,
}

/// The endpoints to use: flags, then the cloud config (`resourceManagerEndpoint`, `cloud`), then the public cloud.
///
/// A custom ARM endpoint keeps the cloud's token scope (it is usually a proxy
/// or a stand-in of the same cloud) unless `--arm-scope` says otherwise.
pub fn resolve_endpoints(
    flags: &EndpointOverrides,
    cloud: Option<&CloudConfig>,
) -> Result<Endpoints, ConfigError> {
    let name = cloud.map_or("", |c| c.cloud.as_str());
    let stack_arm = cloud
        .map(|c| c.resource_manager_endpoint.clone())
        .filter(|s| !s.is_empty());
    let arm = flags.arm.clone().or(stack_arm);
    let built_in = Endpoints::of_cloud(name);
    let base = match (built_in, &arm, &flags.authority_host) {
        (Some(b), _, _) => b,
        (None, Some(arm), Some(authority)) => Endpoints {
            arm: arm.clone(),
            authority_host: authority.clone(),
            arm_scope: format!("{}/.default", arm.trim_end_matches('/')),
        },
        (None, _, _) => return Err(ConfigError::UnknownCloud(name.to_owned())),
    };
    Ok(Endpoints {
        arm: arm.unwrap_or(base.arm).trim_end_matches('/').to_owned(),
        authority_host: flags.authority_host.clone().unwrap_or(base.authority_host),
        arm_scope: flags.arm_scope.clone().unwrap_or(base.arm_scope),
    })
}

/// A user-assigned managed identity, by client id or by resource id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagedIdentityId {
    /// A client id.
    ClientId(String),
    /// An ARM resource id.
    ResourceId(String),
}

/// A client secret that never shows in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(pub String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the controller authenticates to Azure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Azure workload identity: a projected ServiceAccount token exchanged for an Entra token.
    WorkloadIdentity {
        /// The application or user-assigned identity.
        client_id: String,
        /// Its tenant.
        tenant_id: String,
        /// The projected token.
        token_file: PathBuf,
    },
    /// A service principal with a client secret (`azure.json`).
    ClientSecret {
        /// The application.
        client_id: String,
        /// Its tenant.
        tenant_id: String,
        /// The secret.
        secret: SecretString,
    },
    /// The node's managed identity, through IMDS.
    ManagedIdentity {
        /// A user-assigned identity; `None`: the system-assigned one.
        id: Option<ManagedIdentityId>,
    },
}

impl Credential {
    /// Bounded name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WorkloadIdentity { .. } => "workload_identity",
            Self::ClientSecret { .. } => "client_secret",
            Self::ManagedIdentity { .. } => "managed_identity",
        }
    }
}

/// Workload-identity settings from flags (or `AZURE_*` variables, read by the binary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadIdentityFlags {
    /// `--workload-identity-client-id`.
    pub client_id: Option<String>,
    /// `--workload-identity-tenant-id`.
    pub tenant_id: Option<String>,
    /// `--federated-token-file`.
    pub token_file: Option<PathBuf>,
}

/// Workload identity, when a token file is given (flag, or the cloud config's extension).
fn workload_identity(
    flags: &WorkloadIdentityFlags,
    c: &CloudConfig,
) -> Option<Result<Credential, ConfigError>> {
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let from_cloud = c.use_federated_workload_identity_extension;
    let cloud_file = nonempty(&c.aad_federated_token_file).filter(|_| from_cloud);
    let token_file = flags.token_file.clone().or(cloud_file.map(PathBuf::from))?;
    let incomplete = |missing| ConfigError::Incomplete {
        credential: "workload identity",
        missing,
    };
    let client_id = flags
        .client_id
        .clone()
        .or_else(|| nonempty(&c.aad_client_id));
    let tenant_id = flags.tenant_id.clone().or_else(|| nonempty(&c.tenant_id));
    Some(match (client_id, tenant_id) {
        (None, _) => Err(incomplete("--workload-identity-client-id")),
        (_, None) => Err(incomplete("--workload-identity-tenant-id")),
        (Some(client_id), Some(tenant_id)) => Ok(Credential::WorkloadIdentity {
            client_id,
            tenant_id,
            token_file,
        }),
    })
}

/// Chooses the credential, first match wins:
///
/// 1. workload identity: `--federated-token-file`, or `azure.json`'s
///    `useFederatedWorkloadIdentityExtension` with `aadFederatedTokenFile`
///    (client and tenant from the flags, else `aadClientId`/`tenantId`);
/// 2. managed identity when `azure.json` says `useManagedIdentityExtension: true`
///    (as cloud-provider-azure and aad-pod-identity read it);
/// 3. the service principal of `azure.json` (`aadClientId`, `aadClientSecret`
///    other than `msi`, `tenantId`);
/// 4. the node's managed identity (system-assigned, or `userAssignedIdentityID`).
pub fn choose_credential(
    flags: &WorkloadIdentityFlags,
    cloud: Option<&CloudConfig>,
) -> Result<Credential, ConfigError> {
    let empty = CloudConfig::default();
    let c = cloud.unwrap_or(&empty);
    if let Some(wi) = workload_identity(flags, c) {
        return wi;
    }
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let managed = || Credential::ManagedIdentity {
        id: nonempty(&c.user_assigned_identity_id).map(|id| {
            if id.starts_with('/') {
                ManagedIdentityId::ResourceId(id)
            } else {
                ManagedIdentityId::ClientId(id)
            }
        }),
    };
    if c.use_managed_identity_extension {
        return Ok(managed());
    }
    let secret = nonempty(&c.aad_client_secret).filter(|s| !s.eq_ignore_ascii_case("msi"));
    if let Some(secret) = secret {
        let incomplete = |missing| ConfigError::Incomplete {
            credential: "the cloud config's service principal",
            missing,
        };
        return Ok(Credential::ClientSecret {
            client_id: nonempty(&c.aad_client_id).ok_or_else(|| incomplete("aadClientId"))?,
            tenant_id: nonempty(&c.tenant_id).ok_or_else(|| incomplete("tenantId"))?,
            secret: SecretString(secret),
        });
    }
    // Falling back to a managed identity here would silently act as another principal.
    if let Some(path) = nonempty(&c.aad_client_cert_path) {
        return Err(ConfigError::CertificateUnsupported(path));
    }
    Ok(managed())
}

#[cfg(test)]
mod tests;
