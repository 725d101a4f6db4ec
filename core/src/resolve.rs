//! Resolution of a pod's identity references (annotation and `aadpodidbinding` label), same namespace only.

use std::collections::BTreeMap;

use crate::model::{AzureIdentity, Credential, IdentityIndex, IdentityType};
use crate::names;

/// How a pod came to reference an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Named in the `podid.io/identity` annotation.
    Annotation,
    /// Bound through the AzureIdentityBinding of that name (`aadpodidbinding` label).
    Binding(String),
}

/// An identity a pod may use, resolved against the pod's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedIdentity {
    /// The AzureIdentity's name.
    pub name: String,
    /// The AzureIdentity object.
    pub identity: AzureIdentity,
    /// Where the reference came from.
    pub source: Source,
}

/// Why a pod's identity references cannot be honoured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A name in the annotation names no AzureIdentity.
    #[error("AzureIdentity {name:?} not found in namespace {namespace:?}")]
    NotFound {
        /// The missing identity.
        name: String,
        /// The pod's namespace.
        namespace: String,
    },
    /// A binding selected by the pod's label names no AzureIdentity.
    #[error(
        "AzureIdentity {name:?} not found in namespace {namespace:?} \
         (named by AzureIdentityBinding {binding:?})"
    )]
    BindingTargetNotFound {
        /// The missing identity.
        name: String,
        /// The binding that names it.
        binding: String,
        /// The pod's namespace.
        namespace: String,
    },
    /// The pod's `aadpodidbinding` label selects no binding.
    #[error(
        "no AzureIdentityBinding in namespace {namespace:?} has spec.selector {selector:?} \
         (the pod's aadpodidbinding label)"
    )]
    NoBinding {
        /// The label's value.
        selector: String,
        /// The pod's namespace.
        namespace: String,
    },
    /// The identity exists but cannot be used as it is written.
    #[error("AzureIdentity {name:?} in namespace {namespace:?} {problem}")]
    Unusable {
        /// The identity.
        name: String,
        /// Its namespace.
        namespace: String,
        /// What is wrong, phrased to follow the name.
        problem: String,
    },
}

/// Resolves the identities a pod references, default first, without duplicates.
///
/// Annotation names come first in their written order, then identities bound
/// through `aadpodidbinding`, in binding-name order.
pub fn resolve_identities(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    index: &IdentityIndex,
) -> Result<Vec<ResolvedIdentity>, ResolveError> {
    let mut refs: Vec<(String, Source)> = annotations
        .get(names::IDENTITY_ANNOTATION)
        .map(|v| v.split(',').map(str::trim).filter(|n| !n.is_empty()))
        .into_iter()
        .flatten()
        .map(|n| (n.to_owned(), Source::Annotation))
        .collect();
    if let Some(selector) = labels.get(names::AAD_BINDING_LABEL) {
        let before = refs.len();
        refs.extend(index.bindings_with_selector(namespace, selector).map(|b| {
            (
                b.spec.azure_identity.clone(),
                Source::Binding(b.name.clone()),
            )
        }));
        if refs.len() == before {
            return Err(ResolveError::NoBinding {
                selector: selector.clone(),
                namespace: namespace.to_owned(),
            });
        }
    }
    let mut resolved: Vec<ResolvedIdentity> = Vec::with_capacity(refs.len());
    for (name, source) in refs {
        if resolved.iter().any(|r| r.name == name) {
            continue;
        }
        let identity = index
            .identity(namespace, &name)
            .ok_or_else(|| match &source {
                Source::Annotation => ResolveError::NotFound {
                    name: name.clone(),
                    namespace: namespace.to_owned(),
                },
                Source::Binding(b) => ResolveError::BindingTargetNotFound {
                    name: name.clone(),
                    binding: b.clone(),
                    namespace: namespace.to_owned(),
                },
            })?;
        check_usable(identity, namespace)?;
        resolved.push(ResolvedIdentity {
            name,
            identity: identity.clone(),
            source,
        });
    }
    Ok(resolved)
}

/// Refuses identities the proxy could not serve, naming the field to fix.
fn check_usable(id: &AzureIdentity, pod_namespace: &str) -> Result<(), ResolveError> {
    let unusable = |problem: String| ResolveError::Unusable {
        name: id.name.clone(),
        namespace: id.namespace.clone(),
        problem,
    };
    let spec = &id.spec;
    let code = spec.kind.code();
    if spec.client_id.trim().is_empty() {
        return Err(unusable(format!("(type {code}) has no spec.clientID")));
    }
    if let Some(bad) = [
        &spec.client_id,
        &spec.resource_id,
        &spec.tenant_id,
        &spec.ad_endpoint,
    ]
    .into_iter()
    .find(|v| v.contains([',', '=', ' ']) || v.chars().any(char::is_control))
    {
        return Err(unusable(format!(
            "has a field with a comma, '=', space or control character: {bad:?}"
        )));
    }
    match &id.credential {
        Credential::Spec => {}
        Credential::Federated if spec.tenant_id.trim().is_empty() => {
            return Err(unusable(format!(
                "is federated ({}: {}) and has no spec.tenantID",
                names::CREDENTIAL_ANNOTATION,
                names::CREDENTIAL_FEDERATED
            )));
        }
        // The pod's service-account token replaces IMDS and any Secret.
        Credential::Federated => return Ok(()),
        Credential::Unknown(value) => {
            return Err(unusable(format!(
                "has annotation {}: {value:?}; the only value is {:?} (or no annotation)",
                names::CREDENTIAL_ANNOTATION,
                names::CREDENTIAL_FEDERATED
            )));
        }
    }
    match spec.kind {
        IdentityType::UserAssignedMsi => Ok(()),
        IdentityType::ServicePrincipal | IdentityType::ServicePrincipalCertificate => {
            if spec.tenant_id.trim().is_empty() {
                return Err(unusable(format!("(type {code}) has no spec.tenantID")));
            }
            let secret = spec.client_password.as_ref().filter(|s| !s.name.is_empty());
            let Some(secret) = secret else {
                return Err(unusable(format!(
                    "(type {code}) has no spec.clientPassword.name"
                )));
            };
            if !secret.namespace.is_empty() && secret.namespace != pod_namespace {
                return Err(unusable(format!(
                    "references Secret {:?} in namespace {:?}; a pod can only mount Secrets \
                     of its own namespace {pod_namespace:?}",
                    secret.name, secret.namespace
                )));
            }
            Ok(())
        }
    }
}
