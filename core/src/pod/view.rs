//! The fields of a pod the planner reads, as borrowed typed views; every other field is skipped.
//!
//! Each struct is a `#[derive(Deserialize)]` of exactly what the planner reads, so the
//! review is parsed once: unknown fields go through `IgnoredAny`, strings without
//! escapes are borrowed from the body, and a field given twice is a `duplicate field`
//! error. Presence is recorded where the patch needs it (`metadata`, the maps, the
//! lists, `env`), because its `add` paths are against the object as received.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::MapAccess;

use super::lenient::{FromJson, Lenient, StrMap, object};

/// The pod object as the planner reads it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PodObject<'a> {
    #[serde(borrow, default)]
    pub(super) metadata: Lenient<Metadata<'a>>,
    #[serde(borrow, default)]
    pub(super) spec: Lenient<Spec<'a>>,
}

/// `metadata`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct Metadata<'a> {
    #[serde(borrow, default)]
    pub name: Lenient<Cow<'a, str>>,
    #[serde(borrow, default, rename = "generateName")]
    pub generate_name: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub namespace: Lenient<Cow<'a, str>>,
    #[serde(default)]
    pub labels: Lenient<StrMap>,
    #[serde(default)]
    pub annotations: Lenient<StrMap>,
}

/// `spec`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct Spec<'a> {
    #[serde(default, rename = "hostNetwork")]
    pub host_network: Lenient<bool>,
    #[serde(default, rename = "securityContext")]
    pub security_context: Lenient<PodSecurity>,
    #[serde(borrow, default)]
    pub containers: Lenient<Vec<ContainerView<'a>>>,
    #[serde(borrow, default, rename = "initContainers")]
    pub init_containers: Lenient<Vec<ContainerView<'a>>>,
    #[serde(borrow, default)]
    pub volumes: Lenient<Vec<Named<'a>>>,
}

/// `spec.securityContext`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct PodSecurity {
    #[serde(default, rename = "runAsUser")]
    pub run_as_user: Lenient<i64>,
}

/// One container of `spec.containers` or `spec.initContainers`.
///
/// An element that is not an object is kept (as a container without name, env or
/// security context) so that indexes stay those of the list as received.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContainerView<'a> {
    #[serde(borrow, default)]
    name: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    image: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    env: Lenient<Vec<Named<'a>>>,
    #[serde(borrow, default, rename = "securityContext")]
    security_context: Lenient<SecurityContext<'a>>,
}

/// A container's `securityContext`.
#[derive(Clone, Debug, Default, Deserialize)]
struct SecurityContext<'a> {
    #[serde(default, rename = "runAsUser")]
    run_as_user: Lenient<i64>,
    #[serde(default)]
    privileged: Lenient<bool>,
    #[serde(borrow, default)]
    capabilities: Lenient<Capabilities<'a>>,
}

/// `securityContext.capabilities`.
#[derive(Clone, Debug, Default, Deserialize)]
struct Capabilities<'a> {
    #[serde(borrow, default)]
    add: Lenient<Vec<Cow<'a, str>>>,
}

/// An element read for its `name` only: an env entry, a volume.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct Named<'a> {
    #[serde(borrow, default)]
    pub name: Lenient<Cow<'a, str>>,
}

// === impl FromJson: objects read with their derive ===

macro_rules! from_object {
    ($($ty:ident),*) => {$(
        impl<'de: 'a, 'a> FromJson<'de> for $ty<'a> {
            fn from_object<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                object(map)
            }
        }
    )*};
}

from_object!(
    PodObject,
    Metadata,
    Spec,
    SecurityContext,
    Capabilities,
    Named
);

impl<'de: 'a, 'a> FromJson<'de> for ContainerView<'a> {
    fn from_object<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        object(map)
    }
    fn other() -> Option<Self> {
        Some(Self::default())
    }
}

impl<'de> FromJson<'de> for PodSecurity {
    fn from_object<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        object(map)
    }
}

// === impl ContainerView ===

impl ContainerView<'_> {
    /// `name`, empty if absent.
    pub fn name(&self) -> &str {
        self.name.0.as_deref().unwrap_or_default()
    }

    /// `image`, when it is a string.
    pub fn image(&self) -> Option<&str> {
        self.image.0.as_deref()
    }

    /// Whether `env` exists as a list.
    pub fn has_env(&self) -> bool {
        self.env.0.is_some()
    }

    /// Whether an `env` entry is named `name`.
    pub fn sets_env(&self, name: &str) -> bool {
        self.env
            .0
            .iter()
            .flatten()
            .any(|e| e.name.0.as_deref() == Some(name))
    }

    /// `securityContext.runAsUser`.
    pub fn run_as_user(&self) -> Option<i64> {
        self.security_context.0.as_ref()?.run_as_user.0
    }

    /// Whether it is privileged or adds a capability that can change the pod's network rules.
    pub fn can_change_network(&self) -> bool {
        let Some(sc) = &self.security_context.0 else {
            return false;
        };
        let adds = sc.capabilities.0.as_ref().and_then(|c| c.add.0.as_ref());
        sc.privileged.0.unwrap_or(false)
            || adds.into_iter().flatten().any(|cap| {
                let cap = cap.trim_start_matches("CAP_");
                cap.eq_ignore_ascii_case("NET_ADMIN") || cap.eq_ignore_ascii_case("ALL")
            })
    }
}

impl Named<'_> {
    /// `name`, when it is a string.
    pub fn name(&self) -> Option<&str> {
        self.name.0.as_deref()
    }
}

impl<'a> PodObject<'a> {
    /// `metadata.namespace`, when it is a string.
    pub fn namespace(&self) -> Option<Cow<'a, str>> {
        self.metadata.0.as_ref()?.namespace.0.clone()
    }
}
