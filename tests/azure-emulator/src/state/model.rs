//! The records the emulated world is made of: identities, VMs, scale sets, identity blocks.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::ids;

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
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
