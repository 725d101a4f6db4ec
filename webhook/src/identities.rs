//! The identity objects the planner resolves against: a snapshot fed by a file or a cluster watch.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use podid_core::model::{IdentityIndex, ModelError};
use podid_core::names;
use podid_core::objects::{IdentityObject, identity_object_from_json, parse_identities_yaml};
use tracing::{info, warn};

/// Errors loading identity objects.
#[derive(Debug, thiserror::Error)]
pub enum IdentitiesError {
    /// The file could not be read.
    #[error("reading identities file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's content is wrong.
    #[error("identities file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        source: ModelError,
    },
}

/// The current identity index, swapped whole on change so readers never lock for long.
#[derive(Debug, Default)]
pub struct IdentityStore {
    snapshot: RwLock<Arc<IdentityIndex>>,
    synced: AtomicBool,
}

impl IdentityStore {
    /// A store that is not yet synced (readiness waits for it).
    pub fn empty() -> Self {
        Self::default()
    }

    /// A synced store holding `index`.
    pub fn with_index(index: IdentityIndex) -> Self {
        let store = Self::empty();
        store.publish(index);
        store.synced.store(true, Ordering::Release);
        store
    }

    /// The index as of now.
    pub fn snapshot(&self) -> Arc<IdentityIndex> {
        match self.snapshot.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Whether the initial listing has completed.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn publish(&self, index: IdentityIndex) {
        let index = Arc::new(index);
        match self.snapshot.write() {
            Ok(mut guard) => *guard = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }
}

/// Reads a multi-document identities file; objects without a namespace go to `default_namespace`.
pub fn load_file(path: &Path, default_namespace: &str) -> Result<IdentityIndex, IdentitiesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| IdentitiesError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_identities_yaml(&text, default_namespace).map_err(|source| IdentitiesError::Parse {
        path: shown,
        source,
    })
}

/// The two watched kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Identity,
    Binding,
}

/// Objects of both kinds by (kind, namespace, name), with relists staged per kind.
#[derive(Debug, Default)]
struct WatchState {
    live: BTreeMap<(Kind, String, String), IdentityObject>,
    relisting: BTreeMap<Kind, BTreeMap<(Kind, String, String), IdentityObject>>,
    synced: BTreeMap<Kind, bool>,
}

impl WatchState {
    /// Applies one watch event; returns whether the published index must change.
    fn apply(&mut self, kind: Kind, event: Event<DynamicObject>) -> bool {
        match event {
            Event::Init => {
                self.relisting.insert(kind, BTreeMap::new());
                false
            }
            Event::InitApply(obj) => {
                if let Some((key, value)) = convert(kind, &obj) {
                    self.relisting.entry(kind).or_default().insert(key, value);
                }
                false
            }
            Event::InitDone => {
                let fresh = self.relisting.remove(&kind).unwrap_or_default();
                self.live.retain(|(k, _, _), _| *k != kind);
                self.live.extend(fresh);
                self.synced.insert(kind, true);
                true
            }
            Event::Apply(obj) => {
                let key = key_of(kind, &obj);
                match convert(kind, &obj) {
                    Some((key, value)) => self.live.insert(key, value),
                    None => self.live.remove(&key),
                };
                true
            }
            Event::Delete(obj) => self.live.remove(&key_of(kind, &obj)).is_some(),
        }
    }

    fn all_synced(&self) -> bool {
        [Kind::Identity, Kind::Binding]
            .iter()
            .all(|k| self.synced.get(k).copied().unwrap_or(false))
    }

    fn index(&self) -> IdentityIndex {
        let mut index = IdentityIndex::new();
        for obj in self.live.values() {
            match obj.clone() {
                IdentityObject::Identity(id) => index.upsert_identity(id),
                IdentityObject::Binding(b) => index.upsert_binding(b),
            }
        }
        index
    }
}

fn key_of(kind: Kind, obj: &DynamicObject) -> (Kind, String, String) {
    (
        kind,
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

/// Converts a watched object; an invalid one is logged and treated as absent.
fn convert(kind: Kind, obj: &DynamicObject) -> Option<((Kind, String, String), IdentityObject)> {
    let key = key_of(kind, obj);
    let json = serde_json::to_value(obj).ok()?;
    match identity_object_from_json(&json, &key.1, 0) {
        Ok(value) => Some((key, value)),
        Err(e) => {
            warn!(namespace = %key.1, name = %key.2, error = %e, "ignoring invalid identity object");
            None
        }
    }
}

fn api_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        names::IDENTITY_GROUP,
        names::IDENTITY_VERSION,
        kind,
    ))
}

fn watch_kind(
    client: kube::Client,
    kind: Kind,
) -> impl Stream<Item = (Kind, Result<Event<DynamicObject>, watcher::Error>)> {
    let name = match kind {
        Kind::Identity => names::AZURE_IDENTITY_KIND,
        Kind::Binding => names::AZURE_IDENTITY_BINDING_KIND,
    };
    let api: Api<DynamicObject> = Api::all_with(client, &api_resource(name));
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .map(move |e| (kind, e))
}

/// Keeps `store` in step with the cluster's identity objects until the stream ends.
///
/// # Guarantees
/// The store becomes synced only after both kinds have been listed completely;
/// after that, every event publishes a new snapshot. Watch errors are retried
/// with backoff and never clear the last good snapshot.
pub async fn watch_cluster(client: kube::Client, store: Arc<IdentityStore>) {
    let events = futures::stream::select(
        watch_kind(client.clone(), Kind::Identity),
        watch_kind(client, Kind::Binding),
    );
    let mut events = std::pin::pin!(events);
    let mut state = WatchState::default();
    while let Some((kind, event)) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                warn!(error = %e, ?kind, "identity watch failed; retrying");
                continue;
            }
        };
        if state.apply(kind, event) && state.all_synced() {
            let index = state.index();
            if !store.is_synced() {
                info!(
                    identities = index.identity_count(),
                    bindings = index.binding_count(),
                    "identity cache synced"
                );
            }
            store.publish(index);
            store.synced.store(true, Ordering::Release);
        }
    }
}
