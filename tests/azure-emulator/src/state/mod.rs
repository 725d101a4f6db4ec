//! The emulated Azure world: identities, service principals, VMs, scale sets and which identities each carries.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::ids;
use crate::principal::ServicePrincipal;

/// A user-assigned managed identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its name (last segment of the resource id).
    pub name: String,
    /// ARM resource id (`…/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`).
    pub resource_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Service principal object id (`oid` in tokens; IMDS's `object_id`).
    pub principal_id: String,
    /// Tenant the identity lives in.
    pub tenant_id: String,
}

impl Identity {
    /// An identity whose client and principal ids derive from its resource
    /// id, so they are the same on every run.
    pub fn derived(subscription: &str, group: &str, name: &str, tenant_id: &str) -> Self {
        let resource_id = ids::identity_id(subscription, group, name);
        let lower = resource_id.to_ascii_lowercase();
        Self {
            name: name.into(),
            client_id: ids::stable_guid(&format!("client:{lower}")),
            principal_id: ids::stable_guid(&format!("principal:{lower}")),
            resource_id,
            tenant_id: tenant_id.into(),
        }
    }
}

/// A system-assigned identity of a VM or scale set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemIdentity {
    /// Application (client) id.
    pub client_id: String,
    /// Service principal object id.
    pub principal_id: String,
}

/// The `identity` block of a VM or scale set, as ARM models it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignedIdentities {
    /// The system-assigned identity, if enabled.
    pub system: Option<SystemIdentity>,
    /// Lower-cased resource ids of the user-assigned identities (ARM compares
    /// them case-insensitively).
    pub user_assigned: BTreeSet<String>,
}

impl AssignedIdentities {
    /// ARM's `identity.type` for this block.
    pub fn arm_type(&self) -> &'static str {
        match (self.system.is_some(), !self.user_assigned.is_empty()) {
            (false, false) => "None",
            (true, false) => "SystemAssigned",
            (false, true) => "UserAssigned",
            (true, true) => "SystemAssigned, UserAssigned",
        }
    }
}

/// A VM: standalone, or an instance of a uniform scale set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// Name (IMDS `compute.name`); the key tests use.
    pub name: String,
    /// ARM id (`…/virtualMachines/<name>` or `…/virtualMachineScaleSets/<set>/virtualMachines/<n>`).
    pub resource_id: String,
    /// Subscription.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Name of the scale set it belongs to.
    pub scale_set: Option<String>,
    /// Identities assigned to the VM itself (a scale-set instance also gets
    /// those of its scale set).
    pub identity: AssignedIdentities,
    /// Address of the IMDS endpoint that stands for this VM, once serving.
    pub imds_addr: Option<SocketAddr>,
}

/// A VM scale set; its identities apply to every instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSet {
    /// Name (IMDS `compute.vmScaleSetName`).
    pub name: String,
    /// ARM id.
    pub resource_id: String,
    /// Subscription.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Identities assigned to the scale set.
    pub identity: AssignedIdentities,
}

/// A VM or a scale set: what identities are assigned to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A VM, by name.
    Vm(String),
    /// A scale set, by name.
    ScaleSet(String),
}

/// Why a change to the state was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// No VM of that name.
    #[error("unknown VM {0:?}")]
    UnknownVm(String),
    /// No scale set of that name.
    #[error("unknown scale set {0:?}")]
    UnknownScaleSet(String),
    /// No identity with that name, client id, principal id or resource id.
    #[error("unknown identity {0:?}")]
    UnknownIdentity(String),
    /// A VM or scale set of that name exists already.
    #[error("{0:?} exists already")]
    Duplicate(String),
}

/// The whole emulated world. Plain data: the services read it through
/// [`crate::Azure`], tests and (later) ARM change it.
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
