//! Actual state: the `identity` block a VM or scale set carries in Azure, as last read (or since changed by us).

use std::collections::BTreeMap;

use podid_core::azure_ids::canonical_id;
use serde_json::Value;

use super::request::{ChangeKind, IdentityChange};

/// A user-assigned identity a target carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAssigned {
    /// The id as ARM returned it (or as we sent it).
    pub resource_id: String,
    /// Its client id, when ARM said (protection by client id).
    pub client_id: Option<String>,
}

/// A target's `identity` block: what is on, not what should be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignedIdentities {
    /// Whether the system-assigned identity is on (a PATCH must keep it).
    pub system_assigned: bool,
    user_assigned: BTreeMap<String, UserAssigned>,
}

/// Why an ARM body's `identity` block could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArmShapeError {
    /// `identity.type` is not one ARM defines.
    #[error(
        "identity.type {0:?} is not None, SystemAssigned, UserAssigned or \"SystemAssigned, UserAssigned\""
    )]
    UnknownType(String),
    /// `identity.userAssignedIdentities` is not an object.
    #[error("identity.userAssignedIdentities is not a JSON object")]
    NotAMap,
}

impl AssignedIdentities {
    /// A block with the system identity `system_assigned` and user-assigned `ids`.
    pub fn new<'a>(system_assigned: bool, ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut block = Self {
            system_assigned,
            user_assigned: BTreeMap::new(),
        };
        for id in ids {
            block.insert(id, None);
        }
        block
    }

    /// Reads the `identity` block of an ARM GET (or PATCH) body of a VM or
    /// scale set; no block means no identity at all.
    pub fn from_arm_json(resource: &Value) -> Result<Self, ArmShapeError> {
        let Some(identity) = resource.get("identity").filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        let kind = identity
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("None");
        let system_assigned = match normalize_type(kind).as_str() {
            "none" | "userassigned" => false,
            "systemassigned" | "systemassigned,userassigned" => true,
            _ => return Err(ArmShapeError::UnknownType(kind.to_owned())),
        };
        let mut block = Self::new(system_assigned, []);
        match identity.get("userAssignedIdentities") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (id, value) in map {
                    let client_id = value.get("clientId").and_then(Value::as_str);
                    block.insert(id, client_id.map(str::to_owned));
                }
            }
            Some(_) => return Err(ArmShapeError::NotAMap),
        }
        Ok(block)
    }

    /// Adds (or replaces) a user-assigned identity.
    pub fn insert(&mut self, resource_id: &str, client_id: Option<String>) {
        let resource_id = resource_id.trim().trim_end_matches('/').to_owned();
        self.user_assigned.insert(
            canonical_id(&resource_id),
            UserAssigned {
                resource_id,
                client_id,
            },
        );
    }

    /// Whether the identity with this id (any casing) is on.
    pub fn contains(&self, resource_id: &str) -> bool {
        self.user_assigned.contains_key(&canonical_id(resource_id))
    }

    /// The user-assigned identity with this id (any casing).
    pub fn get(&self, resource_id: &str) -> Option<&UserAssigned> {
        self.user_assigned.get(&canonical_id(resource_id))
    }

    /// Canonical id → identity.
    pub fn user_assigned(&self) -> &BTreeMap<String, UserAssigned> {
        &self.user_assigned
    }

    /// The block after a PATCH carrying `changes` succeeded.
    pub fn apply(&mut self, changes: &[IdentityChange]) {
        for change in changes {
            match change.kind {
                ChangeKind::Add => self.insert(&change.resource_id, change.client_id.clone()),
                ChangeKind::Remove => {
                    self.user_assigned.remove(&change.canonical);
                }
            }
        }
    }
}

/// `"SystemAssigned, UserAssigned"` → `systemassigned,userassigned`.
fn normalize_type(kind: &str) -> String {
    kind.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/A";

    #[test]
    fn arm_identity_block_is_read_case_insensitively_with_client_ids() {
        let body = json!({"identity": {"type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {A: {"principalId": "p", "clientId": "c"}}}});
        let block = AssignedIdentities::from_arm_json(&body).unwrap();
        assert!(block.system_assigned);
        assert!(block.contains(&A.to_lowercase()));
        assert_eq!(block.get(A).unwrap().client_id.as_deref(), Some("c"));
        assert_eq!(block.get(A).unwrap().resource_id, A);
    }

    #[test]
    fn a_body_without_identity_carries_nothing() {
        let block = AssignedIdentities::from_arm_json(&json!({"name": "vm"})).unwrap();
        assert_eq!(block, AssignedIdentities::default());
        let none = AssignedIdentities::from_arm_json(&json!({"identity": {"type": "None"}}));
        assert_eq!(none.unwrap(), AssignedIdentities::default());
    }

    #[test]
    fn unknown_identity_types_and_bad_maps_are_errors() {
        let bad = json!({"identity": {"type": "Everything"}});
        assert!(matches!(
            AssignedIdentities::from_arm_json(&bad),
            Err(ArmShapeError::UnknownType(_))
        ));
        let bad = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": [A]}});
        assert_eq!(
            AssignedIdentities::from_arm_json(&bad),
            Err(ArmShapeError::NotAMap)
        );
    }
}
