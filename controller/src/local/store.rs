//! [`OwnershipStore`] in a local JSON file, for `--cluster-file` runs: the ConfigMap's data map, so records read the same either way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use podid_core::azure_ids::Target;
use tokio::sync::Mutex;

use crate::kube::{decode, encode, key_of};
use crate::plan::TargetOwnership;
use crate::seams::{OwnershipStore, StoreError};

/// The records in one JSON file (`{"<key>": "<entry>"}`, the ConfigMap's `data`).
///
/// # Guarantees
/// - A missing file is an empty store; a save writes a temporary file and
///   renames it over the old one, so a crash leaves the old or the new
///   records, never half of them.
/// - Saves in one process are serialized.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl FileStore {
    /// The store in `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Arc::default(),
        }
    }

    fn read_data(&self) -> Result<BTreeMap<String, String>, StoreError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                StoreError(format!(
                    "{} is not a JSON object of strings: {e}",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(StoreError(format!("reading {}: {e}", self.path.display()))),
        }
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<(), StoreError> {
    let err = |e: std::io::Error| StoreError(format!("writing {}: {e}", path.display()));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

impl OwnershipStore for FileStore {
    async fn load(&self) -> Result<BTreeMap<Target, TargetOwnership>, StoreError> {
        let _guard = self.lock.lock().await;
        Ok(decode(&self.read_data()?))
    }

    async fn save(&self, target: &Target, records: &TargetOwnership) -> Result<(), StoreError> {
        let _guard = self.lock.lock().await;
        let mut data = self.read_data()?;
        match encode(target, records)? {
            Some(value) => data.insert(key_of(target), value),
            None => data.remove(&key_of(target)),
        };
        let text = serde_json::to_string_pretty(&data)
            .map_err(|e| StoreError(format!("encoding {}: {e}", self.path.display())))?;
        write_atomically(&self.path, &text)
    }
}
