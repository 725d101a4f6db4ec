//! The emulated Azure world: identities, service principals, VMs, scale sets and which identities each carries.

mod arm;
mod model;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

pub use self::arm::IdentityUpdate;
pub use self::model::{
    AssignedIdentities, Identity, ScaleSet, StateError, SystemIdentity, Target, Vm,
};
use crate::aad::federated::FederatedCredential;
use crate::ids;
use crate::oidc::IssuerKey;
use crate::principal::ServicePrincipal;

/// The whole emulated world. Plain data: the services read it through
/// [`crate::Azure`], tests and ARM change it.
#[derive(Clone, Debug)]
pub struct AzureState {
    /// Tenant of managed identities, and of the VMs' subscription.
    pub tenant_id: String,
    /// Default subscription for new resources.
    pub subscription_id: String,
    /// Default resource group for new resources.
    pub resource_group: String,
    /// Region reported by IMDS.
    pub location: String,
    identities: BTreeMap<String, Identity>,
    service_principals: BTreeMap<String, ServicePrincipal>,
    vms: BTreeMap<String, Vm>,
    scale_sets: BTreeMap<String, ScaleSet>,
    /// Lower-cased resource ids of identities the ARM caller may not assign
    /// (no Managed Identity Operator role on them).
    unassignable: BTreeSet<String>,
    /// Federated identity credentials by lower-cased client id (apps and managed identities).
    federated: BTreeMap<String, Vec<FederatedCredential>>,
    /// Public keys of the OIDC issuers federated credentials may name.
    issuer_keys: Vec<IssuerKey>,
}

impl Default for AzureState {
    fn default() -> Self {
        Self {
            tenant_id: ids::DEFAULT_TENANT_ID.into(),
            subscription_id: ids::DEFAULT_SUBSCRIPTION_ID.into(),
            resource_group: ids::DEFAULT_RESOURCE_GROUP.into(),
            location: ids::DEFAULT_LOCATION.into(),
            identities: BTreeMap::new(),
            service_principals: BTreeMap::new(),
            vms: BTreeMap::new(),
            scale_sets: BTreeMap::new(),
            unassignable: BTreeSet::new(),
            federated: BTreeMap::new(),
            issuer_keys: Vec::new(),
        }
    }
}

// === impl AzureState: lookups ===

impl AzureState {
    /// All user-assigned identities.
    pub fn identities(&self) -> impl Iterator<Item = &Identity> {
        self.identities.values()
    }

    /// An identity by name, client id, principal id or resource id
    /// (case-insensitive, as Azure compares them).
    pub fn identity(&self, reference: &str) -> Option<&Identity> {
        if let Some(found) = self.identities.get(&reference.to_ascii_lowercase()) {
            return Some(found);
        }
        self.identities.values().find(|i| {
            [&i.name, &i.client_id, &i.principal_id]
                .iter()
                .any(|v| v.eq_ignore_ascii_case(reference))
        })
    }

    /// All VMs.
    pub fn vms(&self) -> impl Iterator<Item = &Vm> {
        self.vms.values()
    }

    /// A VM by name.
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vms.get(name)
    }

    /// A VM by ARM id (case-insensitive).
    pub fn vm_by_id(&self, resource_id: &str) -> Option<&Vm> {
        self.vms
            .values()
            .find(|vm| vm.resource_id.eq_ignore_ascii_case(resource_id))
    }

    /// All scale sets.
    pub fn scale_sets(&self) -> impl Iterator<Item = &ScaleSet> {
        self.scale_sets.values()
    }

    /// A scale set by name.
    pub fn scale_set(&self, name: &str) -> Option<&ScaleSet> {
        self.scale_sets.get(name)
    }

    /// A scale set by ARM id (case-insensitive).
    pub fn scale_set_by_id(&self, resource_id: &str) -> Option<&ScaleSet> {
        self.scale_sets
            .values()
            .find(|s| s.resource_id.eq_ignore_ascii_case(resource_id))
    }

    /// A service principal by client id (case-insensitive).
    pub fn service_principal(&self, client_id: &str) -> Option<&ServicePrincipal> {
        self.service_principals.get(&client_id.to_ascii_lowercase())
    }

    /// Who a token endpoint client id names: a service principal, else a managed
    /// identity (as a principal with no secrets, and its resource id for `xms_mirid`).
    pub fn application(&self, client_id: &str) -> Option<(ServicePrincipal, Option<String>)> {
        if let Some(sp) = self.service_principal(client_id) {
            return Some((sp.clone(), None));
        }
        let mi = self
            .identities
            .values()
            .find(|i| i.client_id.eq_ignore_ascii_case(client_id))?;
        let mut sp = ServicePrincipal::new(&mi.tenant_id, &mi.client_id);
        sp.object_id.clone_from(&mi.principal_id);
        Some((sp, Some(mi.resource_id.clone())))
    }

    /// The federated identity credentials of client id `client_id`.
    pub fn federated_credentials(&self, client_id: &str) -> &[FederatedCredential] {
        self.federated
            .get(&client_id.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The OIDC issuers' public keys.
    pub fn issuer_keys(&self) -> &[IssuerKey] {
        &self.issuer_keys
    }

    /// Tenants that exist: the managed identities' and the service principals'.
    pub fn knows_tenant(&self, tenant: &str) -> bool {
        self.tenant_id.eq_ignore_ascii_case(tenant)
            || self
                .service_principals
                .values()
                .any(|sp| sp.tenant_id.eq_ignore_ascii_case(tenant))
    }

    /// The identity block that `target` carries.
    pub fn assigned(&self, target: &Target) -> Result<&AssignedIdentities, StateError> {
        match target {
            Target::Vm(name) => self
                .vms
                .get(name)
                .map(|vm| &vm.identity)
                .ok_or_else(|| StateError::UnknownVm(name.clone())),
            Target::ScaleSet(name) => self
                .scale_sets
                .get(name)
                .map(|s| &s.identity)
                .ok_or_else(|| StateError::UnknownScaleSet(name.clone())),
        }
    }
}

// === impl AzureState: changes ===

impl AzureState {
    /// Adds (or replaces) an identity in the default subscription and
    /// resource group, with ids derived from its name.
    pub fn add_identity(&mut self, name: &str) -> Identity {
        let identity = Identity::derived(
            &self.subscription_id,
            &self.resource_group,
            name,
            &self.tenant_id,
        );
        self.insert_identity(identity)
    }

    /// Adds (or replaces) an identity exactly as given.
    pub fn insert_identity(&mut self, identity: Identity) -> Identity {
        let key = identity.resource_id.to_ascii_lowercase();
        self.identities.insert(key, identity.clone());
        identity
    }

    /// Adds (or replaces) a service principal.
    pub fn insert_service_principal(&mut self, sp: ServicePrincipal) {
        self.service_principals
            .insert(sp.client_id.to_ascii_lowercase(), sp);
    }

    /// Adds a federated identity credential to the app or managed identity `client_id`.
    pub fn add_federated_credential(&mut self, client_id: &str, credential: FederatedCredential) {
        self.federated
            .entry(client_id.to_ascii_lowercase())
            .or_default()
            .push(credential);
    }

    /// Trusts an OIDC issuer's key (what Entra ID reads from the issuer's JWKS).
    pub fn add_issuer_key(&mut self, key: IssuerKey) {
        self.issuer_keys.push(key);
    }

    /// Adds a standalone VM.
    pub fn add_vm(&mut self, name: &str) -> Result<&Vm, StateError> {
        let resource_id = ids::vm_id(&self.subscription_id, &self.resource_group, name);
        self.insert_vm(name, resource_id, None)
    }

    /// Adds a scale set.
    pub fn add_scale_set(&mut self, name: &str) -> Result<&ScaleSet, StateError> {
        if self.scale_sets.contains_key(name) {
            return Err(StateError::Duplicate(name.into()));
        }
        let set = ScaleSet {
            name: name.into(),
            resource_id: ids::scale_set_id(&self.subscription_id, &self.resource_group, name),
            subscription_id: self.subscription_id.clone(),
            resource_group: self.resource_group.clone(),
            identity: AssignedIdentities::default(),
        };
        Ok(self.scale_sets.entry(name.into()).or_insert(set))
    }

    /// Adds a VM as the next instance of scale set `set`.
    pub fn add_scale_set_vm(&mut self, set: &str, name: &str) -> Result<&Vm, StateError> {
        let scale_set = self
            .scale_sets
            .get(set)
            .ok_or_else(|| StateError::UnknownScaleSet(set.into()))?;
        let instance = self
            .vms
            .values()
            .filter(|vm| vm.scale_set.as_deref() == Some(set))
            .count() as u32;
        let resource_id = ids::scale_set_vm_id(
            &scale_set.subscription_id,
            &scale_set.resource_group,
            set,
            instance,
        );
        self.insert_vm(name, resource_id, Some(set.into()))
    }

    fn insert_vm(
        &mut self,
        name: &str,
        resource_id: String,
        scale_set: Option<String>,
    ) -> Result<&Vm, StateError> {
        if self.vms.contains_key(name) {
            return Err(StateError::Duplicate(name.into()));
        }
        let vm = Vm {
            name: name.into(),
            resource_id,
            subscription_id: self.subscription_id.clone(),
            resource_group: self.resource_group.clone(),
            scale_set,
            identity: AssignedIdentities::default(),
            imds_addr: None,
        };
        Ok(self.vms.entry(name.into()).or_insert(vm))
    }

    /// Records where the IMDS endpoint standing for `vm` listens.
    pub fn set_imds_addr(&mut self, vm: &str, addr: SocketAddr) -> Result<(), StateError> {
        let found = self
            .vms
            .get_mut(vm)
            .ok_or_else(|| StateError::UnknownVm(vm.into()))?;
        found.imds_addr = Some(addr);
        Ok(())
    }

    /// Turns the system-assigned identity of `target` on or off.
    pub fn set_system_identity(&mut self, target: &Target, on: bool) -> Result<(), StateError> {
        let seed = format!("{target:?}");
        let block = self.assigned_mut(target)?;
        block.system = on.then(|| SystemIdentity {
            client_id: ids::stable_guid(&format!("system-client:{seed}")),
            principal_id: ids::stable_guid(&format!("system-principal:{seed}")),
        });
        Ok(())
    }

    /// Assigns identity `reference` to `target`; true if it was not assigned yet.
    pub fn assign(&mut self, target: &Target, reference: &str) -> Result<bool, StateError> {
        let key = self.identity_key(reference)?;
        Ok(self.assigned_mut(target)?.user_assigned.insert(key))
    }

    /// Removes identity `reference` from `target`; true if it was assigned.
    pub fn unassign(&mut self, target: &Target, reference: &str) -> Result<bool, StateError> {
        let key = self.identity_key(reference)?;
        Ok(self.assigned_mut(target)?.user_assigned.remove(&key))
    }

    fn identity_key(&self, reference: &str) -> Result<String, StateError> {
        self.identity(reference)
            .map(|i| i.resource_id.to_ascii_lowercase())
            .ok_or_else(|| StateError::UnknownIdentity(reference.into()))
    }

    /// The identity block of `target`, for changes.
    pub fn assigned_mut(&mut self, target: &Target) -> Result<&mut AssignedIdentities, StateError> {
        match target {
            // A scale-set instance may carry identities of its own too: that
            // is how VMs of flexible scale sets are assigned.
            Target::Vm(name) => self
                .vms
                .get_mut(name)
                .map(|vm| &mut vm.identity)
                .ok_or_else(|| StateError::UnknownVm(name.clone())),
            Target::ScaleSet(name) => self
                .scale_sets
                .get_mut(name)
                .map(|s| &mut s.identity)
                .ok_or_else(|| StateError::UnknownScaleSet(name.clone())),
        }
    }
}
