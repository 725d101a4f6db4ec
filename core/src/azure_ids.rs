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
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [
                "subscriptions",
                sub,
                "resourcegroups",
                rg,
                "providers",
                "microsoft.compute",
                "virtualmachinescalesets",
                ss,
                "virtualmachines",
                instance,
            ] if !instance.is_empty() => Ok(Self::Vmss {
                subscription: (*sub).to_owned(),
                resource_group: (*rg).to_owned(),
                name: (*ss).to_owned(),
            }),
            [
                "subscriptions",
                sub,
                "resourcegroups",
                rg,
                "providers",
                "microsoft.compute",
                "virtualmachines",
                vm,
            ] => Ok(Self::Vm {
                subscription: (*sub).to_owned(),
                resource_group: (*rg).to_owned(),
                name: (*vm).to_owned(),
            }),
            _ => Err(err()),
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
