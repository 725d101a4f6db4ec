//! ARM requests: a target's identity changes as `PATCH` bodies of at most 150 changes, with the type computed from what remains.

use std::collections::BTreeSet;

use podid_core::azure_ids::{Target, canonical_id};
use serde_json::{Map, Value, json};

use super::actual::AssignedIdentities;

/// ARM refuses more identity changes than this in one request
/// ("User Assigned Identities Number … exceed limit '150' in one request").
pub const MAX_CHANGES_PER_REQUEST: usize = 150;

/// Add or remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `"<id>": {}`.
    Add,
    /// `"<id>": null`.
    Remove,
}

/// One identity change on one target.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityChange {
    /// Add or remove.
    pub kind: ChangeKind,
    /// Canonical (lower-case) id, for comparisons.
    pub canonical: String,
    /// The id as sent: as the AzureIdentity writes it (adds) or as recorded (removals).
    pub resource_id: String,
    /// Client id, when known; recorded with the ownership.
    pub client_id: Option<String>,
}

impl IdentityChange {
    /// Adding `resource_id`.
    pub fn add(resource_id: &str, client_id: Option<String>) -> Self {
        Self::new(ChangeKind::Add, resource_id, client_id)
    }

    /// Removing `resource_id`.
    pub fn remove(resource_id: &str) -> Self {
        Self::new(ChangeKind::Remove, resource_id, None)
    }

    fn new(kind: ChangeKind, resource_id: &str, client_id: Option<String>) -> Self {
        Self {
            kind,
            canonical: canonical_id(resource_id),
            resource_id: resource_id.to_owned(),
            client_id,
        }
    }
}

/// ARM's `identity.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentityType {
    /// No identity at all.
    None,
    /// Only the system-assigned identity.
    SystemAssigned,
    /// Only user-assigned identities.
    UserAssigned,
    /// Both.
    SystemAssignedUserAssigned,
}

impl IdentityType {
    /// The type of a block with (or without) a system identity and user identities.
    pub fn of(system_assigned: bool, any_user_assigned: bool) -> Self {
        match (system_assigned, any_user_assigned) {
            (false, false) => Self::None,
            (true, false) => Self::SystemAssigned,
            (false, true) => Self::UserAssigned,
            (true, true) => Self::SystemAssignedUserAssigned,
        }
    }

    /// The string ARM writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::SystemAssigned => "SystemAssigned",
            Self::UserAssigned => "UserAssigned",
            Self::SystemAssignedUserAssigned => "SystemAssigned, UserAssigned",
        }
    }
}

/// One `PATCH` of a target's `identity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchRequest {
    /// The VM or scale set.
    pub target: Target,
    /// The changes it carries (at most [`MAX_CHANGES_PER_REQUEST`]).
    pub changes: Vec<IdentityChange>,
    /// `identity.type`, from what remains once applied.
    pub identity_type: IdentityType,
    /// No user-assigned identity remains: the body sends only the type, and
    /// ARM drops every user-assigned identity, including one someone added
    /// since the last read. Re-read the target right before sending it.
    pub clears_user_assigned: bool,
}

impl PatchRequest {
    /// The JSON body: `{"identity": {"type": …, "userAssignedIdentities": {"<id>": {} | null}}}`,
    /// without the map when no user-assigned identity remains (ARM refuses
    /// the map with type `None` or `SystemAssigned`).
    pub fn body(&self) -> Value {
        let mut identity = Map::new();
        identity.insert("type".into(), self.identity_type.as_str().into());
        if !self.clears_user_assigned {
            let map: Map<String, Value> = self
                .changes
                .iter()
                .map(|c| {
                    let value = match c.kind {
                        ChangeKind::Add => json!({}),
                        ChangeKind::Remove => Value::Null,
                    };
                    (c.resource_id.clone(), value)
                })
                .collect();
            identity.insert("userAssignedIdentities".into(), Value::Object(map));
        }
        json!({ "identity": identity })
    }
}

/// Splits `changes` to `target` into PATCH requests of at most 150 changes:
/// adds first (identities arrive before any leave, and a request that empties
/// the map comes last), each typed from what remains after it, keeping a
/// system-assigned identity that is on.
pub fn build_requests(
    target: &Target,
    actual: &AssignedIdentities,
    changes: &[IdentityChange],
) -> Vec<PatchRequest> {
    let mut ordered: Vec<&IdentityChange> = changes.iter().collect();
    ordered.sort_by_key(|c| c.kind);
    let mut remaining: BTreeSet<String> = actual.user_assigned().keys().cloned().collect();
    ordered
        .chunks(MAX_CHANGES_PER_REQUEST)
        .map(|chunk| {
            for c in chunk {
                match c.kind {
                    ChangeKind::Add => remaining.insert(c.canonical.clone()),
                    ChangeKind::Remove => remaining.remove(&c.canonical),
                };
            }
            PatchRequest {
                target: target.clone(),
                changes: chunk.iter().map(|c| (*c).clone()).collect(),
                identity_type: IdentityType::of(actual.system_assigned, !remaining.is_empty()),
                clears_user_assigned: remaining.is_empty(),
            }
        })
        .collect()
}
