//! One watched kind kept as plain data: watch events applied to a keyed map, relists staged until complete.

use std::collections::BTreeMap;

use kube::runtime::watcher::Event;

/// The objects of one watched kind, converted to `V` and keyed by `(namespace, name)`.
///
/// # Guarantees
/// - A relist (`Init` … `InitDone`) replaces the contents only when it is
///   complete: readers never see a half-listed kind.
/// - An object the converter rejects is treated as absent (a later valid
///   version brings it back).
#[derive(Clone, Debug)]
pub struct Mirror<V> {
    live: BTreeMap<(String, String), V>,
    relisting: Option<BTreeMap<(String, String), V>>,
    synced: bool,
}

impl<V> Default for Mirror<V> {
    fn default() -> Self {
        Self {
            live: BTreeMap::new(),
            relisting: None,
            synced: false,
        }
    }
}

/// `(namespace, name)` of a Kubernetes object (empty namespace for cluster-scoped ones).
pub fn object_key<K: kube::Resource>(obj: &K) -> (String, String) {
    let meta = obj.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl<V: Clone + PartialEq> Mirror<V> {
    /// Applies one watch event, converting objects with `convert`; returns
    /// whether what readers see changed.
    pub fn apply<K: kube::Resource>(
        &mut self,
        event: Event<K>,
        convert: impl Fn(&K) -> Option<V>,
    ) -> bool {
        match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            Event::InitApply(obj) => {
                let value = convert(&obj);
                let staged = self.relisting.get_or_insert_with(BTreeMap::new);
                if let Some(value) = value {
                    staged.insert(object_key(&obj), value);
                }
                false
            }
            Event::InitDone => {
                let fresh = self.relisting.take().unwrap_or_default();
                let changed = !self.synced || fresh != self.live;
                self.live = fresh;
                self.synced = true;
                changed
            }
            Event::Apply(obj) => {
                let key = object_key(&obj);
                match convert(&obj) {
                    Some(value) => self.live.insert(key, value.clone()) != Some(value),
                    None => self.live.remove(&key).is_some(),
                }
            }
            Event::Delete(obj) => self.live.remove(&object_key(&obj)).is_some(),
        }
    }

    /// Whether a complete listing has been seen.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The current values, in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.live.values()
    }

    /// The current entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&(String, String), &V)> {
        self.live.iter()
    }

    /// The value of `(namespace, name)`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&V> {
        self.live.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no object is held.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::ObjectMeta;

    fn ns(name: &str, label: Option<&str>) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: label.map(|l| [("l".to_owned(), l.to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    fn label(n: &Namespace) -> Option<String> {
        n.metadata.labels.as_ref()?.get("l").cloned()
    }

    #[test]
    fn a_relist_is_visible_only_once_complete_and_drops_vanished_objects() {
        let mut m = Mirror::default();
        assert!(m.apply(Event::Apply(ns("gone", Some("x"))), label));
        assert!(!m.apply(Event::Init, label));
        assert!(!m.apply(Event::InitApply(ns("a", Some("1"))), label));
        assert_eq!(m.len(), 1, "the old contents stay until InitDone");
        assert!(!m.is_synced());
        assert!(m.apply(Event::<Namespace>::InitDone, label));
        assert!(m.is_synced());
        assert_eq!(m.values().cloned().collect::<Vec<_>>(), ["1"]);
    }

    #[test]
    fn unchanged_objects_and_repeated_relists_report_no_change() {
        let mut m = Mirror::default();
        m.apply(Event::<Namespace>::InitDone, label);
        assert!(m.apply(Event::Apply(ns("a", Some("1"))), label));
        assert!(!m.apply(Event::Apply(ns("a", Some("1"))), label));
        m.apply(Event::Init, label);
        m.apply(Event::InitApply(ns("a", Some("1"))), label);
        assert!(!m.apply(Event::<Namespace>::InitDone, label));
    }

    #[test]
    fn an_object_the_converter_rejects_counts_as_deleted() {
        let mut m = Mirror::default();
        m.apply(Event::Apply(ns("a", Some("1"))), label);
        assert!(m.apply(Event::Apply(ns("a", None)), label));
        assert!(m.is_empty());
        assert!(!m.apply(Event::Delete(ns("a", None)), label));
    }
}
