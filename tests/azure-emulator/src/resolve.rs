//! Which identity a VM's IMDS hands a token for: the rule Azure applies to `client_id` / `object_id` / `msi_res_id`.

use crate::state::{AzureState, Identity, SystemIdentity, Vm};

/// How a token request names its identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// No selector: the VM's default identity.
    Default,
    /// `client_id`.
    ClientId(String),
    /// `object_id` (the principal id).
    ObjectId(String),
    /// `msi_res_id` or `mi_res_id`.
    ResourceId(String),
}

/// The identity a token is issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// Client id (`appid`, and the response's `client_id`).
    pub client_id: String,
    /// Principal id (`oid`).
    pub principal_id: String,
    /// `xms_mirid`: the identity's resource id, or for a system-assigned
    /// identity the id of the VM or scale set that carries it.
    pub resource_id: String,
    /// Tenant (`tid`).
    pub tenant_id: String,
    /// True for a system-assigned identity.
    pub system: bool,
}

/// Why no identity was found; each is an IMDS 400 `invalid_request`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The VM the endpoint stands for is gone from the state.
    #[error("Identity not found")]
    UnknownVm,
    /// The named identity is not assigned to this VM (nor its scale set), or
    /// no selector and the VM has no identity at all.
    #[error("Identity not found")]
    NotFound,
    /// No selector and more than one user-assigned identity.
    #[error(
        "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"
    )]
    Ambiguous,
}

/// The identity VM `vm_name` gets a token for.
///
/// An identity is found exactly when it is assigned to the VM or to the VM's
/// scale set. Without a selector, Azure's documented behaviour applies: the
/// system-assigned identity if there is one; else the only user-assigned
/// identity; with several user-assigned identities a 400 naming the problem
/// ("Multiple user assigned identities exist…", the message IMDS sends), and
/// with none "Identity not found".
pub fn resolve(
    state: &AzureState,
    vm_name: &str,
    selector: &Selector,
) -> Result<Subject, ResolveError> {
    let vm = state.vm(vm_name).ok_or(ResolveError::UnknownVm)?;
    let system = system_subject(state, vm);
    let users = user_identities(state, vm);
    match selector {
        Selector::Default => match (system, users.as_slice()) {
            (Some(s), _) => Ok(s),
            (None, [only]) => Ok(user_subject(only)),
            (None, []) => Err(ResolveError::NotFound),
            (None, _) => Err(ResolveError::Ambiguous),
        },
        Selector::ClientId(id) => pick(system, &users, |c, _| c.eq_ignore_ascii_case(id)),
        Selector::ObjectId(id) => pick(system, &users, |_, p| p.eq_ignore_ascii_case(id)),
        Selector::ResourceId(id) => users
            .iter()
            .find(|i| i.resource_id.eq_ignore_ascii_case(id))
            .map(|i| user_subject(i))
            .ok_or(ResolveError::NotFound),
    }
}

/// Every user-assigned identity VM `vm` can get tokens for: its own and its scale set's.
pub fn user_identities<'a>(state: &'a AzureState, vm: &Vm) -> Vec<&'a Identity> {
    let set = vm
        .scale_set
        .as_deref()
        .and_then(|name| state.scale_set(name));
    let mut keys: Vec<&String> = vm.identity.user_assigned.iter().collect();
    if let Some(set) = set {
        keys.extend(set.identity.user_assigned.iter());
    }
    keys.sort();
    keys.dedup();
    // A key without an identity (deleted while assigned) is skipped: Azure
    // cannot issue tokens for a deleted identity either.
    keys.into_iter().filter_map(|k| state.identity(k)).collect()
}

fn pick(
    system: Option<Subject>,
    users: &[&Identity],
    matches: impl Fn(&str, &str) -> bool,
) -> Result<Subject, ResolveError> {
    if let Some(s) = system.filter(|s| matches(&s.client_id, &s.principal_id)) {
        return Ok(s);
    }
    users
        .iter()
        .find(|i| matches(&i.client_id, &i.principal_id))
        .map(|i| user_subject(i))
        .ok_or(ResolveError::NotFound)
}

fn system_subject(state: &AzureState, vm: &Vm) -> Option<Subject> {
    let from = |carrier: &str, s: &SystemIdentity| Subject {
        client_id: s.client_id.clone(),
        principal_id: s.principal_id.clone(),
        resource_id: carrier.to_owned(),
        tenant_id: state.tenant_id.clone(),
        system: true,
    };
    if let Some(s) = &vm.identity.system {
        return Some(from(&vm.resource_id, s));
    }
    let set = state.scale_set(vm.scale_set.as_deref()?)?;
    set.identity
        .system
        .as_ref()
        .map(|s| from(&set.resource_id, s))
}

fn user_subject(identity: &Identity) -> Subject {
    Subject {
        client_id: identity.client_id.clone(),
        principal_id: identity.principal_id.clone(),
        resource_id: identity.resource_id.clone(),
        tenant_id: identity.tenant_id.clone(),
        system: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::Target;

    fn world() -> AzureState {
        let mut s = AzureState::default();
        s.add_identity("a");
        s.add_identity("b");
        s.add_vm("vm0").unwrap();
        s.add_scale_set("ss0").unwrap();
        s.add_scale_set_vm("ss0", "ss0-0").unwrap();
        s
    }

    #[test]
    fn a_vm_without_identities_finds_none() {
        let s = world();
        assert_eq!(
            resolve(&s, "vm0", &Selector::Default),
            Err(ResolveError::NotFound)
        );
    }

    #[test]
    fn the_only_user_identity_is_the_default() {
        let mut s = world();
        s.assign(&Target::Vm("vm0".into()), "a").unwrap();
        let got = resolve(&s, "vm0", &Selector::Default).unwrap();
        assert_eq!(got.client_id, s.identity("a").unwrap().client_id);
    }

    #[test]
    fn two_user_identities_without_selector_are_ambiguous() {
        let mut s = world();
        s.assign(&Target::Vm("vm0".into()), "a").unwrap();
        s.assign(&Target::Vm("vm0".into()), "b").unwrap();
        assert_eq!(
            resolve(&s, "vm0", &Selector::Default),
            Err(ResolveError::Ambiguous)
        );
    }

    #[test]
    fn system_identity_wins_without_selector() {
        let mut s = world();
        s.assign(&Target::Vm("vm0".into()), "a").unwrap();
        s.set_system_identity(&Target::Vm("vm0".into()), true)
            .unwrap();
        assert!(resolve(&s, "vm0", &Selector::Default).unwrap().system);
        let block = s.assigned(&Target::Vm("vm0".into())).unwrap();
        assert_eq!(block.arm_type(), "SystemAssigned, UserAssigned");
    }

    #[test]
    fn scale_set_identities_reach_instances_by_any_selector() {
        let mut s = world();
        s.assign(&Target::ScaleSet("ss0".into()), "b").unwrap();
        let b = s.identity("b").unwrap().clone();
        for sel in [
            Selector::ClientId(b.client_id.to_uppercase()),
            Selector::ObjectId(b.principal_id.clone()),
            Selector::ResourceId(b.resource_id.to_lowercase()),
        ] {
            assert_eq!(resolve(&s, "ss0-0", &sel).unwrap().client_id, b.client_id);
        }
        let other = Selector::ClientId(s.identity("a").unwrap().client_id.clone());
        assert_eq!(resolve(&s, "ss0-0", &other), Err(ResolveError::NotFound));
        assert_eq!(
            resolve(&s, "vm0", &Selector::ClientId(b.client_id)),
            Err(ResolveError::NotFound)
        );
    }
}
