//! What ARM changes in the world: identity blocks after a PATCH, deleted identities, identities the caller may not assign.

use std::collections::BTreeSet;

use super::{AzureState, Identity, StateError, Target};

/// A validated change of a VM's or scale set's `identity` block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityUpdate {
    /// Whether the system-assigned identity is on afterwards.
    pub system_assigned: bool,
    /// Whether user-assigned identities remain (type has `UserAssigned`);
    /// false drops them all.
    pub keep_user_assigned: bool,
    /// Lower-cased ids to add.
    pub add: BTreeSet<String>,
    /// Lower-cased ids to remove.
    pub remove: BTreeSet<String>,
}

impl AzureState {
    /// Deletes identity `reference` (name, client id, principal id or
    /// resource id). Like Azure, it stays listed on the VMs and scale sets
    /// that carry it, but no longer resolves, and ARM refuses it.
    pub fn delete_identity(&mut self, reference: &str) -> Result<Identity, StateError> {
        let key = self.identity_key(reference)?;
        self.unassignable.remove(&key);
        self.identities
            .remove(&key)
            .ok_or_else(|| StateError::UnknownIdentity(reference.into()))
    }

    /// Whether the ARM caller has Managed Identity Operator on identity
    /// `reference`: without it, ARM answers 403 LinkedAuthorizationFailed.
    pub fn set_caller_can_assign(&mut self, reference: &str, can: bool) -> Result<(), StateError> {
        let key = self.identity_key(reference)?;
        match can {
            true => self.unassignable.remove(&key),
            false => self.unassignable.insert(key),
        };
        Ok(())
    }

    /// Whether the ARM caller may assign the identity with lower-cased id `key`.
    pub fn caller_can_assign(&self, key: &str) -> bool {
        !self.unassignable.contains(key)
    }

    /// The VM (standalone) or scale set with this ARM id, compared case-insensitively.
    pub fn target_by_id(&self, resource_id: &str) -> Option<Target> {
        if let Some(vm) = self.vm_by_id(resource_id) {
            return Some(Target::Vm(vm.name.clone()));
        }
        self.scale_set_by_id(resource_id)
            .map(|s| Target::ScaleSet(s.name.clone()))
    }

    /// Applies a validated identity change to `target`.
    pub fn apply_identity_update(
        &mut self,
        target: &Target,
        update: &IdentityUpdate,
    ) -> Result<(), StateError> {
        let system_on = self.assigned(target)?.system.is_some();
        if system_on != update.system_assigned {
            self.set_system_identity(target, update.system_assigned)?;
        }
        let block = self.assigned_mut(target)?;
        if !update.keep_user_assigned {
            block.user_assigned.clear();
            return Ok(());
        }
        for id in &update.remove {
            block.user_assigned.remove(id);
        }
        block.user_assigned.extend(update.add.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn world() -> AzureState {
        let mut s = AzureState::default();
        s.add_identity("a");
        s.add_identity("b");
        s.add_vm("vm0").unwrap();
        s
    }

    #[test]
    fn deleted_identities_stay_listed_but_no_longer_resolve() {
        let mut s = world();
        let vm = Target::Vm("vm0".into());
        s.assign(&vm, "a").unwrap();
        s.delete_identity("a").unwrap();
        assert!(s.identity("a").is_none());
        assert_eq!(s.assigned(&vm).unwrap().user_assigned.len(), 1);
    }

    #[test]
    fn updates_merge_remove_and_switch_the_system_identity() {
        let mut s = world();
        let vm = Target::Vm("vm0".into());
        s.assign(&vm, "a").unwrap();
        let key = |s: &AzureState, n: &str| s.identity(n).unwrap().resource_id.to_ascii_lowercase();
        let (a, b) = (key(&s, "a"), key(&s, "b"));
        let update = IdentityUpdate {
            system_assigned: true,
            keep_user_assigned: true,
            add: [b.clone()].into(),
            remove: [a].into(),
        };
        s.apply_identity_update(&vm, &update).unwrap();
        let block = s.assigned(&vm).unwrap();
        assert!(block.system.is_some());
        assert_eq!(block.arm_type(), "SystemAssigned, UserAssigned");
        assert_eq!(block.user_assigned.iter().collect::<Vec<_>>(), [&b]);
        let none = IdentityUpdate::default();
        s.apply_identity_update(&vm, &none).unwrap();
        assert_eq!(s.assigned(&vm).unwrap().arm_type(), "None");
    }

    #[test]
    fn targets_are_found_by_arm_id_in_any_case() {
        let mut s = world();
        s.add_scale_set("ss0").unwrap();
        let id = s.scale_set("ss0").unwrap().resource_id.to_ascii_uppercase();
        assert_eq!(s.target_by_id(&id), Some(Target::ScaleSet("ss0".into())));
        let vm = s.vm("vm0").unwrap().resource_id.clone();
        assert_eq!(s.target_by_id(&vm), Some(Target::Vm("vm0".into())));
        assert_eq!(s.target_by_id("/nope"), None);
    }
}
