//! JSON Patch made only of `add` operations against the object as received.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::{Value, json};

use crate::pod::{ContainerList, PodView};

/// Collects `add` operations; parents are created only where they are missing.
#[derive(Debug, Default)]
pub struct PatchBuilder {
    ops: Vec<PatchOperation>,
    /// Parents this patch has created, so later operations go inside them.
    created: Vec<&'static str>,
}

impl PatchBuilder {
    /// An empty patch.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, tokens: &[&str], value: Value) {
        let path = PointerBuf::from_tokens(tokens.iter().copied());
        self.ops
            .push(PatchOperation::Add(AddOperation { path, value }));
    }

    /// Sets `metadata.<map>.<key>`, creating `metadata` and the map if absent.
    pub fn add_meta_entry(&mut self, pod: &PodView<'_>, map: &'static str, key: &str, value: &str) {
        if !pod.has_metadata() && !self.created.contains(&"metadata") {
            self.add(&["metadata"], json!({}));
            self.created.push("metadata");
        }
        if pod.has_meta_map(map) || self.created.contains(&map) {
            self.add(&["metadata", map, key], json!(value));
        } else {
            self.add(&["metadata", map], json!({ key: value }));
            self.created.push(map);
        }
    }

    /// Appends `entry` to `spec.<list>[index].env`, creating the list if absent.
    pub fn add_env(&mut self, list: ContainerList, index: usize, has_env: bool, entry: Value) {
        let i = index.to_string();
        if has_env {
            self.add(&["spec", list.field(), &i, "env", "-"], entry);
        } else {
            self.add(&["spec", list.field(), &i, "env"], json!([entry]));
        }
    }

    /// Inserts `items` at the front of `spec.<field>`, creating the list if absent.
    pub fn prepend(&mut self, pod: &PodView<'_>, field: &str, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        if pod.has_list(field) {
            for (i, item) in items.into_iter().enumerate() {
                self.add(&["spec", field, &i.to_string()], item);
            }
        } else {
            self.add(&["spec", field], Value::Array(items));
        }
    }

    /// Appends `items` to `spec.<field>`, creating the list if absent.
    pub fn append(&mut self, pod: &PodView<'_>, field: &str, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        if pod.has_list(field) {
            for item in items {
                self.add(&["spec", field, "-"], item);
            }
        } else {
            self.add(&["spec", field], Value::Array(items));
        }
    }

    /// The finished patch.
    pub fn build(self) -> Patch {
        Patch(self.ops)
    }
}
