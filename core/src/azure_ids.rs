//! Azure resource ids: node `spec.providerID` → the VM or scale set that carries identities.

use std::fmt;

/// A VM or VM scale set that identities are assigned to (ARM ids compared case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A standalone VM (or an instance of a flexible scale set).
    Vm {
        /// Subscription id, lower case.
        subscription: String,
        /// Resource group, lower case.
        resource_group: String,
        /// VM name, lower case.
        name: String,
    },
    /// A uniform VM scale set: its identity applies to every instance.
    Vmss {
        /// Subscription id, lower case.
        subscription: String,
        /// Resource group, lower case.
        resource_group: String,
        /// Scale set name, lower case.
        name: String,
    },
}

/// A providerID that names no Azure VM or scale-set instance.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "providerID {0:?} is not an Azure VM or scale-set instance (azure:///subscriptions/…/virtualMachines/… )"
)]
pub struct ProviderIdError(pub String);

impl Target {
    /// Parses a node's `spec.providerID`; never uses the node's name.
    pub fn from_provider_id(provider_id: &str) -> Result<Self, ProviderIdError> {
        let err = || ProviderIdError(provider_id.to_owned());
        let lower = provider_id.to_ascii_lowercase();
        let path = lower.strip_prefix("azure://").ok_or_else(err)?;
        let (sub, rg, rest) = compute_resource(path).ok_or_else(err)?;
        match rest.as_slice() {
            ["virtualmachinescalesets", ss, "virtualmachines", _instance] => {
                Ok(Self::vmss(sub, rg, ss))
            }
            ["virtualmachines", vm] => Ok(Self::vm(sub, rg, vm)),
            _ => Err(err()),
        }
    }

    /// The VM or scale set an ARM id names: [`Target::arm_id`]'s form, in any case.
    pub fn from_arm_id(id: &str) -> Option<Self> {
        let lower = id.trim().to_ascii_lowercase();
        let (sub, rg, rest) = compute_resource(&lower)?;
        match rest.as_slice() {
            ["virtualmachines", name] => Some(Self::vm(sub, rg, name)),
            ["virtualmachinescalesets", name] => Some(Self::vmss(sub, rg, name)),
            _ => None,
        }
    }

    fn vm(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self::Vm {
            subscription: subscription.to_owned(),
            resource_group: resource_group.to_owned(),
            name: name.to_owned(),
        }
    }

    fn vmss(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self::Vmss {
            subscription: subscription.to_owned(),
            resource_group: resource_group.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The ARM resource id (lower case), as used in `GET`/`PATCH` URLs.
    pub fn arm_id(&self) -> String {
        let (kind, sub, rg, name) = match self {
            Self::Vm {
                subscription,
                resource_group,
                name,
            } => ("virtualMachines", subscription, resource_group, name),
            Self::Vmss {
                subscription,
                resource_group,
                name,
            } => (
                "virtualMachineScaleSets",
                subscription,
                resource_group,
                name,
            ),
        };
        format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}"
        )
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arm_id())
    }
}

/// A lower-case path `/subscriptions/S/resourcegroups/G/providers/microsoft.compute/REST…`
/// as (S, G, the non-empty segments of REST).
fn compute_resource(path: &str) -> Option<(&str, &str, Vec<&str>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [
            "subscriptions",
            sub,
            "resourcegroups",
            rg,
            "providers",
            "microsoft.compute",
            rest @ ..,
        ] => Some((sub, rg, rest.to_vec())),
        _ => None,
    }
}

/// The canonical (lower-case) form of an ARM id, for comparisons; ARM ids are case-insensitive.
pub fn canonical_id(id: &str) -> String {
    id.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scale_set_instance_provider_id_names_the_scale_set() {
        let t = Target::from_provider_id(
            "azure:///subscriptions/SUB/resourceGroups/MC_rg_aks_westeurope/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-123-vmss/virtualMachines/3",
        )
        .unwrap();
        assert_eq!(
            t,
            Target::Vmss {
                subscription: "sub".into(),
                resource_group: "mc_rg_aks_westeurope".into(),
                name: "aks-nodepool1-123-vmss".into()
            }
        );
        assert_eq!(
            t.arm_id(),
            "/subscriptions/sub/resourceGroups/mc_rg_aks_westeurope/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-123-vmss"
        );
    }

    #[test]
    fn standalone_vm_provider_id_names_the_vm() {
        let t = Target::from_provider_id("azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/Node-0").unwrap();
        assert_eq!(
            t,
            Target::Vm {
                subscription: "s".into(),
                resource_group: "rg".into(),
                name: "node-0".into()
            }
        );
    }

    #[test]
    fn other_provider_ids_are_rejected() {
        for bad in [
            "",
            "aws:///us-east-1a/i-123",
            "azure:///subscriptions/s/resourceGroups/rg",
            "kind://docker/kind/kind-control-plane",
        ] {
            assert!(Target::from_provider_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_round_trip_through_their_arm_ids() {
        let vm = Target::vm("s", "g", "v");
        for t in [vm, Target::vmss("s", "g", "p")] {
            assert_eq!(Target::from_arm_id(&t.arm_id()), Some(t.clone()));
            assert_eq!(Target::from_arm_id(&t.arm_id().to_uppercase()), Some(t));
        }
        for bad in [
            "/subscriptions/s/resourceGroups/g",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v/extra",
        ] {
            assert_eq!(Target::from_arm_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn canonical_ids_ignore_case_and_trailing_slash() {
        assert_eq!(
            canonical_id(
                "/Subscriptions/S/ResourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Id/"
            ),
            canonical_id(
                "/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/id"
            )
        );
    }
}
