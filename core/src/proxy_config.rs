//! The proxy's configuration as rendered into the pod's spec, and read back by the proxy.
//!
//! Each identity travels as one `--identity=key=value,…` argument so that the
//! pod spec alone says what the proxy will serve.

use std::fmt;
use std::str::FromStr;

use crate::model::IdentityType;
use crate::names;
use crate::resolve::ResolvedIdentity;

/// Path of the proxy binary in the proxy image.
pub const PROXY_BINARY: &str = "/usr/local/bin/podid-proxy";

/// One identity the proxy may hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyIdentity {
    /// AzureIdentity name (for logs and metrics).
    pub name: String,
    /// Credential kind.
    pub kind: IdentityType,
    /// Client id: what IMDS is asked for (type 0) or the service principal (types 1, 2).
    pub client_id: String,
    /// ARM id of a user-assigned identity (type 0), empty otherwise.
    pub resource_id: String,
    /// Tenant of a service principal, empty for type 0.
    pub tenant_id: String,
    /// Azure AD authority host override for a service principal, empty for the default.
    pub authority: String,
    /// Directory where the service principal's Secret is mounted, empty for type 0.
    pub secret_dir: String,
    /// The pod's projected service-account token, for a federated identity; empty otherwise.
    pub token_file: String,
}

/// An `--identity` argument that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--identity {arg:?}: {message}")]
pub struct IdentityArgError {
    arg: String,
    message: String,
}

// === impl ProxyIdentity ===

impl ProxyIdentity {
    /// The proxy's view of a resolved identity.
    pub fn from_resolved(r: &ResolvedIdentity) -> Self {
        let spec = &r.identity.spec;
        if r.identity.is_federated() {
            return Self {
                name: r.name.clone(),
                kind: spec.kind,
                client_id: spec.client_id.clone(),
                resource_id: String::new(),
                tenant_id: spec.tenant_id.clone(),
                authority: spec.ad_endpoint.clone(),
                secret_dir: String::new(),
                token_file: names::FEDERATED_TOKEN_PATH.to_owned(),
            };
        }
        let sp = spec.kind.is_service_principal();
        Self {
            name: r.name.clone(),
            kind: spec.kind,
            client_id: spec.client_id.clone(),
            resource_id: if sp {
                String::new()
            } else {
                spec.resource_id.clone()
            },
            tenant_id: if sp {
                spec.tenant_id.clone()
            } else {
                String::new()
            },
            authority: if sp {
                spec.ad_endpoint.clone()
            } else {
                String::new()
            },
            secret_dir: if sp {
                secret_dir(&r.name)
            } else {
                String::new()
            },
            token_file: String::new(),
        }
    }

    /// Whether tokens come from Entra ID with the pod's service-account token (never IMDS).
    pub fn is_federated(&self) -> bool {
        !self.token_file.is_empty()
    }

    /// Whether tokens come from Entra ID (federated or a service principal), not IMDS.
    pub fn uses_entra(&self) -> bool {
        self.is_federated() || self.kind.is_service_principal()
    }
}

/// Whether a pod with these identities needs the node's IMDS at all: not when every
/// identity is federated. A pod without identities keeps IMDS's other paths (CONTRACT §4).
pub fn needs_imds(identities: &[ProxyIdentity]) -> bool {
    identities.is_empty() || !identities.iter().all(ProxyIdentity::is_federated)
}

/// Where the Secret of service-principal identity `name` is mounted in the proxy.
pub fn secret_dir(name: &str) -> String {
    format!("{}/{name}", names::SP_SECRET_MOUNT_DIR)
}

impl fmt::Display for ProxyIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "name={},type={},client-id={}",
            self.name,
            self.kind.code(),
            self.client_id
        )?;
        for (key, value) in [
            ("resource-id", &self.resource_id),
            ("tenant-id", &self.tenant_id),
            ("authority", &self.authority),
            ("secret-dir", &self.secret_dir),
            ("token-file", &self.token_file),
        ] {
            if !value.is_empty() {
                write!(f, ",{key}={value}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for ProxyIdentity {
    type Err = IdentityArgError;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let err = |message: String| IdentityArgError {
            arg: arg.to_owned(),
            message,
        };
        let mut id = ProxyIdentity {
            name: String::new(),
            kind: IdentityType::UserAssignedMsi,
            client_id: String::new(),
            resource_id: String::new(),
            tenant_id: String::new(),
            authority: String::new(),
            secret_dir: String::new(),
            token_file: String::new(),
        };
        let mut kind = None;
        for pair in arg.split(',') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| err(format!("{pair:?} is not key=value")))?;
            let slot = match key {
                "name" => &mut id.name,
                "client-id" => &mut id.client_id,
                "resource-id" => &mut id.resource_id,
                "tenant-id" => &mut id.tenant_id,
                "authority" => &mut id.authority,
                "secret-dir" => &mut id.secret_dir,
                "token-file" => &mut id.token_file,
                "type" => {
                    let code: i64 = value
                        .parse()
                        .map_err(|_| err(format!("type {value:?} is not a number")))?;
                    kind = Some(IdentityType::try_from(code).map_err(err)?);
                    continue;
                }
                other => return Err(err(format!("unknown key {other:?}"))),
            };
            value.clone_into(slot);
        }
        id.kind = kind.ok_or_else(|| err("type is missing".into()))?;
        if id.name.is_empty() || id.client_id.is_empty() {
            return Err(err("name and client-id are required".into()));
        }
        if id.is_federated() {
            if id.tenant_id.is_empty() || !id.secret_dir.is_empty() {
                return Err(err(
                    "a federated identity (token-file) needs tenant-id and no secret-dir".into(),
                ));
            }
        } else if id.kind.is_service_principal()
            && (id.tenant_id.is_empty() || id.secret_dir.is_empty())
        {
            return Err(err(
                "a service principal needs tenant-id and secret-dir".into()
            ));
        }
        Ok(id)
    }
}

/// Install-time settings of the proxy that the webhook renders into every pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// How long `/ready` waits for the default identity's token before reporting ready anyway.
    pub ready_timeout_secs: u32,
    /// Refuse the IMDS paths other than the token endpoint instead of forwarding them.
    pub block_other_paths: bool,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            ready_timeout_secs: 60,
            block_other_paths: false,
        }
    }
}

/// The `args` of the `podid-proxy` container.
///
/// A pod that needs no IMDS ([`needs_imds`]) cannot reach it (podid-init rejects it),
/// so the proxy refuses the other IMDS paths instead of forwarding them.
pub fn proxy_args(identities: &[ProxyIdentity], settings: &ProxySettings) -> Vec<String> {
    let mut args = vec![
        "serve".to_owned(),
        format!("--listen=127.0.0.1:{}", names::PROXY_PORT),
        format!("--admin-listen=0.0.0.0:{}", names::PROXY_ADMIN_PORT),
        format!("--ready-timeout={}s", settings.ready_timeout_secs),
    ];
    if settings.block_other_paths || !needs_imds(identities) {
        args.push("--block-other-paths".to_owned());
    }
    args.extend(identities.iter().map(|id| format!("--identity={id}")));
    args
}

/// The `args` of the `podid-init` container; `--reject-imds` when the pod needs no IMDS
/// ([`needs_imds`]): every uid redirected, every other packet to IMDS rejected.
pub fn init_args(identities: &[ProxyIdentity]) -> Vec<String> {
    let mut args = vec![
        "init".to_owned(),
        format!("--proxy-uid={}", names::PROXY_UID),
        format!("--proxy-port={}", names::PROXY_PORT),
    ];
    if !needs_imds(identities) {
        args.push("--reject-imds".to_owned());
    }
    args
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identity_argument_round_trips() {
        let sp = ProxyIdentity {
            name: "sp".into(),
            kind: IdentityType::ServicePrincipalCertificate,
            client_id: "c".into(),
            resource_id: String::new(),
            tenant_id: "t".into(),
            authority: "https://login.example/".into(),
            secret_dir: secret_dir("sp"),
            token_file: String::new(),
        };
        let text = sp.to_string();
        assert_eq!(
            text,
            "name=sp,type=2,client-id=c,tenant-id=t,authority=https://login.example/,secret-dir=/var/run/secrets/podid/sp"
        );
        assert_eq!(text.parse::<ProxyIdentity>().unwrap(), sp);
    }

    #[test]
    fn federated_identity_argument_round_trips_and_closes_imds() {
        let text = "name=f,type=0,client-id=c,tenant-id=t,token-file=/var/run/secrets/podid-federated/token";
        let id: ProxyIdentity = text.parse().unwrap();
        assert!(id.is_federated() && id.uses_entra());
        assert_eq!(id.to_string(), text);
        let msi: ProxyIdentity = "name=m,type=0,client-id=m".parse().unwrap();
        assert!(!msi.uses_entra());
        let settings = ProxySettings::default();
        for (ids, closed) in [
            (vec![id.clone()], true),
            (vec![id.clone(), msi.clone()], false),
            (vec![], false),
        ] {
            let init = init_args(&ids);
            let serve = proxy_args(&ids, &settings);
            assert_eq!(
                init.contains(&"--reject-imds".to_owned()),
                closed,
                "{init:?}"
            );
            assert_eq!(
                serve.contains(&"--block-other-paths".to_owned()),
                closed,
                "{serve:?}"
            );
        }
    }

    #[test]
    fn bad_identity_arguments_say_what_is_wrong() {
        for (arg, needle) in [
            ("name=a,client-id=c", "type is missing"),
            ("name=a,type=9,client-id=c", "spec.type 9"),
            ("name=a,type=0", "required"),
            ("name=a,type=1,client-id=c", "tenant-id"),
            ("name=a,type=0,client-id=c,colour=red", "unknown key"),
            ("name", "not key=value"),
            ("name=a,type=0,client-id=c,token-file=/t", "needs tenant-id"),
            (
                "name=a,type=1,client-id=c,tenant-id=t,secret-dir=/s,token-file=/t",
                "no secret-dir",
            ),
        ] {
            let err = arg.parse::<ProxyIdentity>().unwrap_err().to_string();
            assert!(err.contains(needle), "{arg}: {err}");
        }
    }
}
