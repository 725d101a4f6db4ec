//! The identities file (YAML or JSON): the world the binary starts with, and the `--vm` flag.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use crate::aad::federated::{self, FederatedCredential};
use crate::oidc::{IssuerError, ServiceAccountIssuer};
use crate::principal::{RegisteredCert, ServicePrincipal};
use crate::state::{AzureState, Identity, StateError, Target};

/// The file's top level. Every field is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorldFile {
    /// Tenant of the managed identities.
    pub tenant_id: Option<String>,
    /// Subscription of new resources.
    pub subscription_id: Option<String>,
    /// Resource group of new resources.
    pub resource_group: Option<String>,
    /// Region reported by IMDS.
    pub location: Option<String>,
    /// User-assigned identities.
    #[serde(default)]
    pub identities: Vec<IdentityEntry>,
    /// Scale sets.
    #[serde(default)]
    pub scale_sets: Vec<CarrierEntry>,
    /// VMs (standalone, or instances of a scale set above).
    #[serde(default)]
    pub vms: Vec<VmEntry>,
    /// Service principals for the Azure AD endpoint.
    #[serde(default)]
    pub service_principals: Vec<PrincipalEntry>,
    /// OIDC issuers (a cluster's service-account issuer) federated credentials may trust.
    #[serde(default)]
    pub oidc_issuers: Vec<IssuerEntry>,
}

/// An OIDC issuer and its signing key.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerEntry {
    /// Issuer URL, exactly as its tokens' `iss`.
    pub issuer: String,
    /// PKCS#8 DER ECDSA P-256 key file, relative to the identities file (only its public half is used).
    pub key_file: PathBuf,
}

/// A federated identity credential.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedEntry {
    /// Issuer URL.
    pub issuer: String,
    /// Subject, e.g. `system:serviceaccount:NS:SA`.
    pub subject: String,
    /// Audiences; Entra ID's default when absent.
    #[serde(default = "default_audiences")]
    pub audiences: Vec<String>,
}

fn default_audiences() -> Vec<String> {
    vec![federated::TOKEN_EXCHANGE_AUDIENCE.to_owned()]
}

/// A user-assigned identity; ids not given are derived from the name.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityEntry {
    /// Name.
    pub name: String,
    /// Resource group, if not the default.
    pub resource_group: Option<String>,
    /// Client id.
    pub client_id: Option<String>,
    /// Principal (object) id.
    pub principal_id: Option<String>,
    /// False when ARM's caller lacks Managed Identity Operator on it (adding
    /// it then fails with 403 LinkedAuthorizationFailed).
    #[serde(default = "yes")]
    pub caller_can_assign: bool,
    /// Federated identity credentials.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedEntry>,
}

fn yes() -> bool {
    true
}

/// A scale set.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CarrierEntry {
    /// Name.
    pub name: String,
    /// Whether it has a system-assigned identity.
    #[serde(default)]
    pub system_assigned: bool,
    /// Identities assigned at start (names, client ids or resource ids).
    #[serde(default)]
    pub identities: Vec<String>,
}

/// A VM.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmEntry {
    /// Name.
    pub name: String,
    /// Scale set it is an instance of.
    pub scale_set: Option<String>,
    /// Whether it has a system-assigned identity.
    #[serde(default)]
    pub system_assigned: bool,
    /// Identities assigned at start.
    #[serde(default)]
    pub identities: Vec<String>,
    /// Where its IMDS listens (or use `--vm`).
    pub imds_listen: Option<SocketAddr>,
}

/// A service principal.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalEntry {
    /// Client id.
    pub client_id: String,
    /// Tenant, if not the default.
    pub tenant_id: Option<String>,
    /// Accepted client secrets.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Certificates (PEM or DER files, relative to the identities file).
    #[serde(default)]
    pub certificate_files: Vec<PathBuf>,
    /// SHA-1 thumbprints (hex) of certificates known only by thumbprint.
    #[serde(default)]
    pub certificate_thumbprints: Vec<String>,
    /// Federated identity credentials.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedEntry>,
}

/// Why the identities file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading a file.
    #[error("reading {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid YAML/JSON of the expected shape.
    #[error("parsing the identities file: {0}")]
    Parse(#[from] serde_yaml::Error),
    /// A reference to something not declared.
    #[error("building the world: {0}")]
    State(#[from] StateError),
    /// An OIDC issuer key that cannot be used.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// A thumbprint that is not 40 hex digits.
    #[error("certificate thumbprint {0:?} is not a hex SHA-1")]
    Thumbprint(String),
    /// A `--vm` flag that is not `name=…,listen=…[,scale-set=…]`.
    #[error("--vm {0:?}: expected name=NAME,listen=ADDR[,scale-set=SET]")]
    VmFlag(String),
}

/// `--vm name=vm0,listen=127.0.0.1:18080[,scale-set=ss0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmFlag {
    /// VM name (created if the file does not declare it).
    pub name: String,
    /// Where its IMDS listens.
    pub listen: SocketAddr,
    /// Scale set, for a VM created by the flag (created too if needed).
    pub scale_set: Option<String>,
}

impl FromStr for VmFlag {
    type Err = FileError;

    fn from_str(s: &str) -> Result<Self, FileError> {
        let bad = || FileError::VmFlag(s.to_owned());
        let (mut name, mut listen, mut scale_set) = (None, None, None);
        for pair in s.split(',') {
            match pair.split_once('=').ok_or_else(bad)? {
                ("name", v) if !v.is_empty() => name = Some(v.to_owned()),
                ("listen", v) => listen = Some(v.parse().map_err(|_| bad())?),
                ("scale-set", v) if !v.is_empty() => scale_set = Some(v.to_owned()),
                _ => return Err(bad()),
            }
        }
        Ok(Self {
            name: name.ok_or_else(bad)?,
            listen: listen.ok_or_else(bad)?,
            scale_set,
        })
    }
}

/// Reads the identities file at `path`: the state, and the VMs whose IMDS
/// address it names.
pub fn load(path: &Path) -> Result<(AzureState, Vec<(String, SocketAddr)>), FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: WorldFile = serde_yaml::from_str(&text)?;
    build(&file, path.parent().unwrap_or(Path::new(".")))
}

/// Builds the state a parsed file describes; certificate paths are relative to `base`.
pub fn build(
    file: &WorldFile,
    base: &Path,
) -> Result<(AzureState, Vec<(String, SocketAddr)>), FileError> {
    let mut state = AzureState::default();
    let defaults = [
        (&file.tenant_id, &mut state.tenant_id),
        (&file.subscription_id, &mut state.subscription_id),
        (&file.resource_group, &mut state.resource_group),
        (&file.location, &mut state.location),
    ];
    for (given, slot) in defaults {
        if let Some(v) = given {
            *slot = v.clone();
        }
    }
    for entry in &file.identities {
        add_identity(&mut state, entry);
    }
    for set in &file.scale_sets {
        state.add_scale_set(&set.name)?;
        carry(
            &mut state,
            &Target::ScaleSet(set.name.clone()),
            set.system_assigned,
            &set.identities,
        )?;
    }
    let mut listens = Vec::new();
    for vm in &file.vms {
        match &vm.scale_set {
            Some(set) => state.add_scale_set_vm(set, &vm.name)?,
            None => state.add_vm(&vm.name)?,
        };
        carry(
            &mut state,
            &Target::Vm(vm.name.clone()),
            vm.system_assigned,
            &vm.identities,
        )?;
        listens.extend(vm.imds_listen.map(|addr| (vm.name.clone(), addr)));
    }
    for sp in &file.service_principals {
        let principal = principal(&state, sp, base)?;
        add_federated(&mut state, &principal.client_id, &sp.federated_credentials);
        state.insert_service_principal(principal);
    }
    for entry in &file.oidc_issuers {
        let path = base.join(&entry.key_file);
        let pkcs8 = std::fs::read(&path).map_err(|source| FileError::Read { path, source })?;
        let issuer = ServiceAccountIssuer::from_pkcs8(&entry.issuer, &pkcs8)?;
        state.add_issuer_key(issuer.key().clone());
    }
    Ok((state, listens))
}

/// Adds the VMs `--vm` flags name that the file did not declare.
pub fn apply_vm_flag(state: &mut AzureState, flag: &VmFlag) -> Result<(), StateError> {
    if state.vm(&flag.name).is_some() {
        return Ok(());
    }
    match &flag.scale_set {
        Some(set) => {
            if state.scale_set(set).is_none() {
                state.add_scale_set(set)?;
            }
            state.add_scale_set_vm(set, &flag.name)?;
        }
        None => {
            state.add_vm(&flag.name)?;
        }
    }
    Ok(())
}

fn add_identity(state: &mut AzureState, entry: &IdentityEntry) {
    let group = entry
        .resource_group
        .as_deref()
        .unwrap_or(&state.resource_group);
    let mut identity =
        Identity::derived(&state.subscription_id, group, &entry.name, &state.tenant_id);
    if let Some(id) = &entry.client_id {
        identity.client_id = id.clone();
    }
    if let Some(id) = &entry.principal_id {
        identity.principal_id = id.clone();
    }
    let inserted = state.insert_identity(identity);
    add_federated(state, &inserted.client_id, &entry.federated_credentials);
    if !entry.caller_can_assign {
        // The identity was inserted just above, so it is known.
        let _ = state.set_caller_can_assign(&inserted.resource_id, false);
    }
}

fn add_federated(state: &mut AzureState, client_id: &str, entries: &[FederatedEntry]) {
    for e in entries {
        let credential = FederatedCredential {
            issuer: e.issuer.clone(),
            subject: e.subject.clone(),
            audiences: e.audiences.clone(),
        };
        state.add_federated_credential(client_id, credential);
    }
}

fn carry(
    state: &mut AzureState,
    target: &Target,
    system: bool,
    identities: &[String],
) -> Result<(), StateError> {
    state.set_system_identity(target, system)?;
    for identity in identities {
        state.assign(target, identity)?;
    }
    Ok(())
}

fn principal(
    state: &AzureState,
    entry: &PrincipalEntry,
    base: &Path,
) -> Result<ServicePrincipal, FileError> {
    let tenant = entry.tenant_id.as_deref().unwrap_or(&state.tenant_id);
    let mut sp = ServicePrincipal::new(tenant, &entry.client_id);
    sp.secrets = entry.secrets.clone();
    for file in &entry.certificate_files {
        let path = base.join(file);
        let bytes = std::fs::read(&path).map_err(|source| FileError::Read { path, source })?;
        let ders: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .map(|c| c.to_vec())
            .collect();
        // Not PEM: take the file as one DER certificate.
        let ders = if ders.is_empty() { vec![bytes] } else { ders };
        sp.certificates
            .extend(ders.iter().map(|d| RegisteredCert::from_der(d)));
    }
    for hex in &entry.certificate_thumbprints {
        let cert = RegisteredCert::from_thumbprint(hex)
            .ok_or_else(|| FileError::Thumbprint(hex.clone()))?;
        sp.certificates.push(cert);
    }
    Ok(sp)
}
