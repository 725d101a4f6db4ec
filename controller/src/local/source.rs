//! The cluster from a file: Pods, Nodes, Namespaces and identity objects read from multi-document YAML and fed to the [`ClusterIndex`] as the watchers would.
//!
//! Each read is a complete re-list (`Init`, `InitApply`…, `InitDone` per
//! kind), so an object removed from the file leaves the index as a deleted
//! one would. The same selectors as the watches apply: only pods labelled
//! `podid.io/injected=true` and namespaces labelled `podid.io/inject=enabled`
//! are seen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;
use podid_core::names;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{error, info};

use crate::kube::{ClusterIndex, Update, identity_resource};

/// How often the file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why the cluster file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading the file failed.
    #[error("reading the cluster file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A document is not YAML, or not an object the controller reads.
    #[error("cluster file {path}, document {index}: {why}")]
    Document {
        /// The file.
        path: PathBuf,
        /// 1-based position of the document (items of a `List` count as its own).
        index: usize,
        /// What is wrong, for a person.
        why: String,
    },
}

/// The objects of one read of the file, by kind.
#[derive(Clone, Debug, Default)]
pub struct ClusterFile {
    /// Pods labelled `podid.io/injected=true`.
    pub pods: Vec<Pod>,
    /// Every node.
    pub nodes: Vec<Node>,
    /// Namespaces labelled `podid.io/inject=enabled`.
    pub namespaces: Vec<Namespace>,
    /// AzureIdentity objects.
    pub identities: Vec<DynamicObject>,
    /// AzureIdentityBinding objects.
    pub bindings: Vec<DynamicObject>,
}

// === impl ClusterFile ===

impl ClusterFile {
    /// Parses `text`, the content of `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, SourceError> {
        let mut file = Self::default();
        for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let index = i + 1;
            let bad = |why: String| SourceError::Document {
                path: path.to_owned(),
                index,
                why,
            };
            let value: Value = serde::Deserialize::deserialize(document)
                .map_err(|e| bad(format!("not YAML: {e}")))?;
            if value.is_null() {
                continue;
            }
            let items = match value.get("kind").and_then(Value::as_str) {
                Some("List") => value.get("items").and_then(Value::as_array).cloned(),
                _ => Some(vec![value]),
            };
            for item in items.ok_or_else(|| bad("a List without items".into()))? {
                file.add(item).map_err(bad)?;
            }
        }
        Ok(file)
    }

    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, SourceError> {
        let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    fn add(&mut self, item: Value) -> Result<(), String> {
        let str_of = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or_default();
        let (api_version, kind) = (str_of("apiVersion").to_owned(), str_of("kind").to_owned());
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Pod") => {
                let pod: Pod = typed(item, &kind)?;
                if label(&pod.metadata.labels, names::INJECTED_LABEL) == Some("true") {
                    self.pods.push(pod);
                } else {
                    info!(pod = ?pod.metadata.name, "pod not labelled podid.io/injected=true: not watched, as in a cluster");
                }
            }
            ("v1", "Node") => self.nodes.push(typed(item, &kind)?),
            ("v1", "Namespace") => {
                let ns: Namespace = typed(item, &kind)?;
                if label(&ns.metadata.labels, names::INJECT_LABEL) == Some(names::INJECT_ENABLED) {
                    self.namespaces.push(ns);
                }
            }
            (names::IDENTITY_API_VERSION, names::AZURE_IDENTITY_KIND) => {
                self.identities.push(typed(item, &kind)?);
            }
            (names::IDENTITY_API_VERSION, names::AZURE_IDENTITY_BINDING_KIND) => {
                self.bindings.push(typed(item, &kind)?);
            }
            _ => {
                return Err(format!(
                    "apiVersion {api_version:?} kind {kind:?} is not read by the controller \
                     (v1 Pod, Node, Namespace; {} AzureIdentity, AzureIdentityBinding)",
                    names::IDENTITY_API_VERSION
                ));
            }
        }
        Ok(())
    }

    /// Feeds every kind to `index` as a complete re-list.
    pub fn apply_to(self, index: &ClusterIndex) {
        fn relist<K>(index: &ClusterIndex, objects: Vec<K>, wrap: impl Fn(Event<K>) -> Update) {
            index.apply(wrap(Event::Init));
            for object in objects {
                index.apply(wrap(Event::InitApply(object)));
            }
            index.apply(wrap(Event::InitDone));
        }
        let identity = identity_resource(names::AZURE_IDENTITY_KIND);
        let binding = identity_resource(names::AZURE_IDENTITY_BINDING_KIND);
        relist(index, self.pods, Update::Pod);
        relist(index, self.nodes, Update::Node);
        relist(index, self.namespaces, Update::Namespace);
        relist(index, self.identities, |e| {
            Update::Identity(identity.clone(), e)
        });
        relist(index, self.bindings, |e| {
            Update::Binding(binding.clone(), e)
        });
    }
}

fn typed<K: DeserializeOwned>(item: Value, kind: &str) -> Result<K, String> {
    serde_json::from_value(item).map_err(|e| format!("not a valid {kind}: {e}"))
}

fn label<'a>(
    labels: &'a Option<std::collections::BTreeMap<String, String>>,
    key: &str,
) -> Option<&'a str> {
    labels.as_ref()?.get(key).map(String::as_str)
}

/// Keeps `index` in step with `path` until dropped: re-read whenever the
/// file's size or modification time changes. A read that fails is logged and
/// the last good contents stay in effect; nothing is lost.
pub async fn watch_file(path: PathBuf, index: Arc<ClusterIndex>, mut seen: Option<Stamp>) {
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match ClusterFile::read(&path) {
            Ok(file) => {
                info!(path = %path.display(), "cluster file changed: re-read");
                file.apply_to(&index);
            }
            Err(e) => error!(error = %e, "cluster file unreadable; keeping what it said before"),
        }
    }
}

/// What tells one version of the file from the next.
pub type Stamp = (u64, SystemTime);

/// The file's size and modification time, if it can be read.
pub fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
