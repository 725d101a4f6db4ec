//! [`OwnershipStore`] on a ConfigMap in the release namespace: one key per VM or scale set, written with resourceVersion preconditions.
//!
//! Stored format (part of the upgrade contract): each data key is
//! `<vm|vmss>.<resource group>.<name>.<hash>` (characters outside
//! `[-._a-zA-Z0-9]` become `_`; the hash, FNV-1a of the target's ARM id, keeps
//! keys distinct), and its value is
//! `{"target": "<ARM id>", "identities": {<canonical id>: {"resourceID", "clientID"?, "unneededSince"?}}}`.
//! A target whose records are empty has no key.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use podid_core::azure_ids::Target;
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::plan::TargetOwnership;
use crate::seams::{OwnershipStore, StoreError};

/// How many times a save re-reads and retries after a conflict.
const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    target: String,
    identities: TargetOwnership,
}

/// The ConfigMap key of `target`.
pub fn key_of(target: &Target) -> String {
    let (kind, rg, name) = match target {
        Target::Vm {
            resource_group,
            name,
            ..
        } => ("vm", resource_group, name),
        Target::Vmss {
            resource_group,
            name,
            ..
        } => ("vmss", resource_group, name),
    };
    let readable: String = format!("{kind}.{rg}.{name}")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' => c,
            _ => '_',
        })
        .take(200)
        .collect();
    format!("{readable}.{:016x}", fnv1a(target.arm_id().as_bytes()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Reads every readable entry of the ConfigMap's data; unreadable ones are logged and skipped.
pub fn decode(data: &BTreeMap<String, String>) -> BTreeMap<Target, TargetOwnership> {
    let mut out = BTreeMap::new();
    for (key, value) in data {
        let entry = match serde_json::from_str::<Entry>(value) {
            Ok(entry) => entry,
            Err(e) => {
                error!(%key, error = %e, "unreadable ownership record; its identities will not be removed");
                continue;
            }
        };
        match Target::from_arm_id(&entry.target) {
            Some(target) => {
                out.insert(target, entry.identities);
            }
            None => {
                error!(%key, target = %entry.target, "ownership record names no VM or scale set")
            }
        }
    }
    out
}

/// The stored value of `target`'s records; `None` (no key) when they are empty.
pub fn encode(target: &Target, records: &TargetOwnership) -> Result<Option<String>, StoreError> {
    if records.is_empty() {
        return Ok(None);
    }
    let entry = Entry {
        target: target.arm_id(),
        identities: records.clone(),
    };
    serde_json::to_string(&entry)
        .map(Some)
        .map_err(|e| StoreError(format!("encoding the records of {target}: {e}")))
}

/// The ownership records in ConfigMap `name` of `namespace`.
///
/// # Guarantees
/// - A save changes only its target's key, and only on the resourceVersion
///   it read: a concurrent change is never overwritten (409 → re-read, retry).
/// - Needs `get`, `create` and `update` on that one ConfigMap, nothing else.
#[derive(Clone)]
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    name: String,
}

impl std::fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn api_error(step: &str, e: &kube::Error) -> StoreError {
    StoreError(format!("{step}: {e}"))
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl ConfigMapStore {
    /// The store in ConfigMap `name` of `namespace`.
    pub fn new(client: kube::Client, namespace: &str, name: impl Into<String>) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
        }
    }

    async fn read(&self) -> Result<Option<ConfigMap>, StoreError> {
        match self.api.get(&self.name).await {
            Ok(cm) => Ok(Some(cm)),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(api_error("reading the ownership ConfigMap", &e)),
        }
    }

    /// One attempt; `Ok(false)` on a conflict (someone wrote in between).
    async fn try_save(&self, key: &str, value: Option<&str>) -> Result<bool, StoreError> {
        let current = self.read().await?;
        let exists = current.is_some();
        let mut cm = current.unwrap_or_else(|| ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        });
        let data = cm.data.get_or_insert_with(BTreeMap::new);
        let unchanged = match value {
            Some(v) => data.insert(key.to_owned(), v.to_owned()).as_deref() == Some(v),
            None => data.remove(key).is_none(),
        };
        if unchanged {
            return Ok(true);
        }
        let pp = PostParams::default();
        let written = if exists {
            self.api.replace(&self.name, &pp, &cm).await
        } else {
            self.api.create(&pp, &cm).await
        };
        match written {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(api_error("writing the ownership ConfigMap", &e)),
        }
    }
}

impl OwnershipStore for ConfigMapStore {
    async fn load(&self) -> Result<BTreeMap<Target, TargetOwnership>, StoreError> {
        let cm = self.read().await?;
        Ok(cm
            .and_then(|cm| cm.data)
            .map(|d| decode(&d))
            .unwrap_or_default())
    }

    async fn save(&self, target: &Target, records: &TargetOwnership) -> Result<(), StoreError> {
        let key = key_of(target);
        let value = encode(target, records)?;
        for attempt in 1..=MAX_ATTEMPTS {
            if self.try_save(&key, value.as_deref()).await? {
                return Ok(());
            }
            warn!(%target, attempt, "ownership ConfigMap changed meanwhile; re-reading");
        }
        Err(StoreError(format!(
            "saving the records of {target}: still conflicting after {MAX_ATTEMPTS} attempts"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::OwnedIdentity;

    fn vmss(name: &str) -> Target {
        Target::Vmss {
            subscription: "sub".into(),
            resource_group: "mc_rg(x)".into(),
            name: name.into(),
        }
    }

    #[test]
    fn keys_are_valid_configmap_keys_and_distinct_per_target() {
        let (a, b) = (key_of(&vmss("pool1")), key_of(&vmss("pool2")));
        assert_ne!(a, b);
        assert!(a.starts_with("vmss.mc_rg_x_.pool1."));
        assert!(a.len() <= 253);
        let valid = |k: &str| {
            k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        };
        assert!(valid(&a) && valid(&b));
    }

    #[test]
    fn unreadable_entries_are_skipped_and_readable_ones_kept() {
        let mut records = TargetOwnership::new();
        records.insert(
            "/x".into(),
            OwnedIdentity {
                resource_id: "/X".into(),
                client_id: None,
                unneeded_since: None,
            },
        );
        let entry = Entry {
            target: vmss("p").arm_id(),
            identities: records.clone(),
        };
        let data = BTreeMap::from([
            ("good".to_owned(), serde_json::to_string(&entry).unwrap()),
            ("bad".to_owned(), "{".to_owned()),
            (
                "alien".to_owned(),
                r#"{"target":"/nope","identities":{}}"#.to_owned(),
            ),
        ]);
        assert_eq!(decode(&data), BTreeMap::from([(vmss("p"), records)]));
    }
}
