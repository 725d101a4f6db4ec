//! Ownership records: which identities on a target the controller added, so only those are ever removed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::request::{ChangeKind, IdentityChange};
use super::time::Timestamp;

/// An identity the controller added to a target.
///
/// Persisted (this is what survives a restart), so the field names are part
/// of the stored format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedIdentity {
    /// The id as it was sent (removals are sent in the same casing).
    #[serde(rename = "resourceID")]
    pub resource_id: String,
    /// Its client id, when known (protection by client id).
    #[serde(rename = "clientID", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Since when no pod has needed it; `None` while some pod does.
    #[serde(
        rename = "unneededSince",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unneeded_since: Option<Timestamp>,
}

/// The ownership records of one target: canonical identity id → record.
pub type TargetOwnership = BTreeMap<String, OwnedIdentity>;

/// The records after a PATCH carrying `applied` succeeded: added identities
/// become owned, removed ones are forgotten. A failed PATCH changed nothing
/// in Azure, so it changes nothing here either: do not call this for it.
pub fn record_success(ownership: &TargetOwnership, applied: &[IdentityChange]) -> TargetOwnership {
    let mut records = ownership.clone();
    for change in applied {
        match change.kind {
            ChangeKind::Add => {
                records.insert(
                    change.canonical.clone(),
                    OwnedIdentity {
                        resource_id: change.resource_id.clone(),
                        client_id: change.client_id.clone(),
                        unneeded_since: None,
                    },
                );
            }
            ChangeKind::Remove => {
                records.remove(&change.canonical);
            }
        }
    }
    records
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ID: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/A";

    #[test]
    fn added_identities_become_owned_and_removed_ones_are_forgotten() {
        let add = IdentityChange::add(ID, Some("client".into()));
        let owned = record_success(&TargetOwnership::new(), std::slice::from_ref(&add));
        let record = &owned[&ID.to_ascii_lowercase()];
        assert_eq!(record.resource_id, ID);
        assert_eq!(record.client_id.as_deref(), Some("client"));
        assert_eq!(record.unneeded_since, None);
        let removed = record_success(&owned, &[IdentityChange::remove(ID)]);
        assert!(removed.is_empty());
    }

    #[test]
    fn records_round_trip_through_json_with_stable_field_names() {
        let mut owned = TargetOwnership::new();
        owned.insert(
            "k".into(),
            OwnedIdentity {
                resource_id: ID.into(),
                client_id: None,
                unneeded_since: Some(Timestamp::from_unix_secs(7)),
            },
        );
        let text = serde_json::to_string(&owned).unwrap();
        assert_eq!(
            text,
            format!(r#"{{"k":{{"resourceID":"{ID}","unneededSince":7}}}}"#)
        );
        assert_eq!(
            serde_json::from_str::<TargetOwnership>(&text).unwrap(),
            owned
        );
    }
}
