//! Strategies for arbitrary pods: random metadata, containers, env and fields unknown to podid.

use std::collections::BTreeMap;

use podid_core::inject::{InjectConfig, PodsWithoutIdentity};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::IDENTITIES;

/// Keys podid reads or writes; random metadata never uses them.
const RESERVED_KEYS: [&str; 4] = [
    "aadpodidbinding",
    "kubernetes.io/config.mirror",
    "kubernetes.azure.com/managedby",
    "kubectl.kubernetes.io/default-container",
];

/// Arbitrary JSON, nested a few levels, with keys that need escaping in a JSON Pointer.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z0-9~/._-]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Fields unknown to podid (and to today's Kubernetes), to sprinkle at every level.
fn unknown_fields() -> impl Strategy<Value = BTreeMap<String, Value>> {
    prop::collection::btree_map("future[A-Za-z0-9~/]{0,6}", arb_json(), 0..3)
}

fn meta_key() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just(""),
        Just("example.com/"),
        Just("app.kubernetes.io/"),
        Just("a~b/"),
        Just("x/y~1/"),
        Just("podid.io/"),
    ];
    (prefix, "[a-zA-Z0-9~/._-]{1,10}")
        .prop_map(|(p, n)| format!("{p}{n}"))
        .prop_filter("not one of podid's keys", |k| {
            !k.starts_with("podid.io/") && !RESERVED_KEYS.contains(&k.as_str())
        })
}

fn meta_map(values: &'static str) -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    prop::option::of(prop::collection::btree_map(meta_key(), values, 0..4))
}

/// What a container does that could change the pod's network (or nearly).
#[derive(Clone, Copy, Debug)]
pub enum Risk {
    None,
    Privileged,
    NotPrivileged,
    Adds(&'static str),
}

impl Risk {
    /// Whether podid must warn about it.
    pub fn risky(self) -> bool {
        match self {
            Risk::Privileged => true,
            Risk::Adds(cap) => cap != "NET_RAW",
            Risk::None | Risk::NotPrivileged => false,
        }
    }
}

fn risk() -> impl Strategy<Value = Risk> {
    prop_oneof![
        6 => Just(Risk::None),
        1 => Just(Risk::Privileged),
        1 => Just(Risk::NotPrivileged),
        1 => Just(Risk::Adds("NET_RAW")),
        1 => Just(Risk::Adds("NET_ADMIN")),
        1 => Just(Risk::Adds("CAP_NET_ADMIN")),
        1 => Just(Risk::Adds("all")),
    ]
}

fn env_entry() -> impl Strategy<Value = Value> {
    prop_oneof![
        ("[A-Z_]{1,8}", "\\PC{0,10}").prop_map(|(n, v)| json!({"name": n, "value": v})),
        "[A-Z_]{1,8}".prop_map(
            |n| json!({"name": n, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
        ),
    ]
}

/// A `runAsUser`, now and then the proxy's.
fn uid() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        12 => Just(None),
        3 => Just(Some(0)),
        3 => Just(Some(1000)),
        1 => Just(Some(65534)),
        1 => Just(Some(1501)),
    ]
}

/// A container called `name`, with the risk it carries.
fn arb_container(name: String) -> impl Strategy<Value = (Value, Risk)> {
    (
        prop::option::of(prop::collection::vec(env_entry(), 0..3)),
        any::<bool>(),
        uid(),
        risk(),
        unknown_fields(),
    )
        .prop_map(move |(env, preset, uid, risk, unknown)| {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            c.insert("image".into(), json!(format!("registry.example/{name}:1")));
            if let Some(mut env) = env {
                if preset {
                    env.push(json!({"name": "AZURE_CLIENT_ID", "value": "users-own"}));
                }
                c.insert("env".into(), Value::Array(env));
            }
            let mut sc = Map::new();
            if let Some(uid) = uid {
                sc.insert("runAsUser".into(), json!(uid));
            }
            match risk {
                Risk::None => {}
                Risk::Privileged => {
                    sc.insert("privileged".into(), json!(true));
                }
                Risk::NotPrivileged => {
                    sc.insert("privileged".into(), json!(false));
                }
                Risk::Adds(cap) => {
                    sc.insert("capabilities".into(), json!({"add": [cap]}));
                }
            }
            if !sc.is_empty() {
                c.insert("securityContext".into(), Value::Object(sc));
            }
            c.extend(unknown);
            (Value::Object(c), risk)
        })
}

/// Containers and their risks: init containers, then regular ones.
type Containers = (Vec<(Value, Risk)>, Vec<(Value, Risk)>);

/// Containers with unique names, none of them podid's, split into init and regular ones.
fn arb_containers() -> impl Strategy<Value = Containers> {
    (
        prop::collection::btree_set("[a-z][a-z0-9-]{0,8}", 1..6),
        any::<prop::sample::Index>(),
    )
        .prop_flat_map(|(names, split)| {
            let names: Vec<String> = names
                .into_iter()
                .filter(|n| !n.starts_with("podid-"))
                .collect();
            // At least one regular container.
            let n_init = split.index(names.len());
            let (init, regular) = names.split_at(n_init);
            let init: Vec<_> = init.iter().cloned().map(arb_container).collect();
            let regular: Vec<_> = regular.iter().cloned().map(arb_container).collect();
            (init, regular)
        })
        .prop_filter("a pod has containers", |(_, regular)| !regular.is_empty())
}

/// An arbitrary pod, the identity names it resolves to (default first), and its risks.
#[derive(Clone, Debug)]
pub struct Case {
    /// The pod as received.
    pub pod: Value,
    /// What it resolves to: annotation names in order, then storage-reader if bound.
    pub identities: Vec<&'static str>,
    /// Risk of each init container, in order.
    pub init_risks: Vec<Risk>,
    /// Risk of each regular container, in order.
    pub regular_risks: Vec<Risk>,
    /// Layout, strictness and `podsWithoutIdentity`, drawn too.
    pub cfg: InjectConfig,
}

prop_compose! {
    pub fn arb_case()(
        (init, regular) in arb_containers(),
        init_list_when_empty in any::<bool>(),
        annotated in prop::option::of(prop::sample::subsequence(IDENTITIES.to_vec(), 1..=2).prop_shuffle()),
        bound in any::<bool>(),
        labels in meta_map("[a-zA-Z0-9._-]{0,12}"),
        annotations in meta_map("\\PC{0,20}"),
        default_container_set in any::<bool>(),
        generate_name in any::<bool>(),
        managed_fields in prop::option::of(arb_json()),
        pod_uid in uid(),
        volumes in prop::option::of(prop::collection::vec("[a-z]{1,6}", 0..3)),
        top_unknown in unknown_fields(),
        meta_unknown in unknown_fields(),
        spec_unknown in unknown_fields(),
        native in any::<bool>(),
        strict in prop::bool::weighted(0.2),
        skip_without_identity in any::<bool>(),
    ) -> Case {
        let mut labels = labels;
        let mut annotations = annotations;
        let mut identities: Vec<&'static str> = annotated.clone().unwrap_or_default();
        if let Some(names) = &annotated {
            annotations.get_or_insert_with(BTreeMap::new)
                .insert("podid.io/identity".into(), names.join(", "));
        }
        if bound {
            labels.get_or_insert_with(BTreeMap::new).insert("aadpodidbinding".into(), "legacy-app".into());
            if !identities.contains(&"storage-reader") {
                identities.push("storage-reader");
            }
        }
        if default_container_set {
            annotations.get_or_insert_with(BTreeMap::new)
                .insert("kubectl.kubernetes.io/default-container".into(), "whichever".into());
        }
        let mut metadata = Map::new();
        if generate_name {
            metadata.insert("generateName".into(), json!("web-5d8f7c9b6-"));
        } else {
            metadata.insert("name".into(), json!("web-0"));
        }
        if let Some(labels) = labels {
            metadata.insert("labels".into(), json!(labels));
        }
        if let Some(annotations) = annotations {
            metadata.insert("annotations".into(), json!(annotations));
        }
        if let Some(mf) = managed_fields {
            metadata.insert("managedFields".into(), json!([{"manager": "kubectl", "fieldsV1": mf}]));
        }
        metadata.extend(meta_unknown);

        let mut spec = Map::new();
        let (init, init_risks): (Vec<Value>, Vec<Risk>) = init.into_iter().unzip();
        let (regular, regular_risks): (Vec<Value>, Vec<Risk>) = regular.into_iter().unzip();
        if !init.is_empty() || init_list_when_empty {
            spec.insert("initContainers".into(), Value::Array(init));
        }
        spec.insert("containers".into(), Value::Array(regular));
        if let Some(volumes) = volumes {
            let volumes: BTreeMap<String, Value> = volumes.into_iter()
                .map(|n| (n.clone(), json!({"name": n, "emptyDir": {}}))).collect();
            spec.insert("volumes".into(), Value::Array(volumes.into_values().collect()));
        }
        if let Some(uid) = pod_uid {
            spec.insert("securityContext".into(), json!({"runAsUser": uid}));
        }
        spec.extend(spec_unknown);

        let mut pod = Map::new();
        pod.insert("apiVersion".into(), json!("v1"));
        pod.insert("kind".into(), json!("Pod"));
        pod.insert("metadata".into(), Value::Object(metadata));
        pod.insert("spec".into(), Value::Object(spec));
        pod.extend(top_unknown);

        let cfg = InjectConfig {
            native_sidecars: native,
            strict,
            pods_without_identity: if skip_without_identity {
                PodsWithoutIdentity::Skip
            } else {
                PodsWithoutIdentity::Protect
            },
            ..InjectConfig::default()
        };
        Case { pod: Value::Object(pod), identities, init_risks, regular_risks, cfg }
    }
}
