//! The planner's vocabulary: install-time settings in, a decision out.

use json_patch::Patch;
use serde_json::{Value, json};

use crate::proxy_config::ProxySettings;
use crate::selector::LabelSelector;
use crate::status::{InjectionStatus, Layout};

/// What to do with pods of an opted-in namespace that name no identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodsWithoutIdentity {
    /// Inject a proxy that refuses every token request (the default).
    #[default]
    Protect,
    /// Leave them alone.
    Skip,
}

/// Install-time settings of the injection.
#[derive(Clone, Debug, PartialEq)]
pub struct InjectConfig {
    /// Image of `podid-init` and `podid-proxy`.
    pub image: String,
    /// `imagePullPolicy` of the injected containers; the cluster's default when `None`.
    pub image_pull_policy: Option<String>,
    /// Put the proxy in an init container with `restartPolicy: Always`.
    pub native_sidecars: bool,
    /// Behaviour for pods that name no identity.
    pub pods_without_identity: PodsWithoutIdentity,
    /// Deny instead of warn when a container could remove the redirect.
    pub strict: bool,
    /// Pods matching any of these are never injected.
    pub exceptions: Vec<LabelSelector>,
    /// Namespaces never injected besides the system ones (the release namespace).
    pub excluded_namespaces: Vec<String>,
    /// Proxy settings rendered into its arguments.
    pub proxy: ProxySettings,
    /// `resources` of `podid-proxy`.
    pub proxy_resources: Value,
    /// `resources` of `podid-init`.
    pub init_resources: Value,
}

impl Default for InjectConfig {
    fn default() -> Self {
        Self {
            image: format!("podid/proxy:{}", env!("CARGO_PKG_VERSION")),
            image_pull_policy: None,
            native_sidecars: true,
            pods_without_identity: PodsWithoutIdentity::Protect,
            strict: false,
            exceptions: Vec::new(),
            excluded_namespaces: Vec::new(),
            proxy: ProxySettings::default(),
            proxy_resources: json!({"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}),
            init_resources: json!({"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}),
        }
    }
}

impl InjectConfig {
    /// The layout this configuration produces.
    pub fn layout(&self) -> Layout {
        if self.native_sidecars {
            Layout::Native
        } else {
            Layout::Legacy
        }
    }
}

/// Why a pod is admitted untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A system namespace or the release namespace.
    ExcludedNamespace,
    /// Labelled `podid.io/inject: disabled`.
    OptedOut,
    /// A mirror pod of a static pod.
    MirrorPod,
    /// An AKS add-on pod.
    AksManaged,
    /// Matches the exception selector.
    Exception(String),
    /// Names no identity and `podsWithoutIdentity` is `skip`.
    NoIdentity,
    /// Shares the node's network: a redirect would change the node.
    HostNetwork,
    /// Already carries podid's injection, as podid renders it now.
    AlreadyInjected,
}

/// Why a pod is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// The object is not a pod with containers.
    Malformed,
    /// An identity reference does not resolve, or resolves to an unusable identity.
    Unresolved,
    /// `hostNetwork: true` with an identity.
    HostNetwork,
    /// A container runs as the proxy's uid.
    ProxyUid,
    /// Injected containers or status present but not as podid renders them.
    FakedInjection,
    /// A privileged or NET_ADMIN container with `strict` on.
    Strict,
    /// The pod already uses a volume name podid injects.
    ReservedName,
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Admit unchanged.
    Skip {
        /// Why.
        reason: SkipReason,
        /// Warnings for the user.
        warnings: Vec<String>,
    },
    /// Admit with a patch.
    Inject {
        /// `add` operations against the pod as received.
        patch: Patch,
        /// The `podid.io/status` value the patch writes.
        status: InjectionStatus,
        /// Warnings for the user.
        warnings: Vec<String>,
    },
    /// Refuse.
    Deny {
        /// Stable reason (metrics).
        reason: DenyReason,
        /// What a person reads: the pod and the cause.
        message: String,
    },
}

// === impl SkipReason, DenyReason ===

impl SkipReason {
    /// Bounded label value for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ExcludedNamespace => "excluded_namespace",
            Self::OptedOut => "opted_out",
            Self::MirrorPod => "mirror_pod",
            Self::AksManaged => "aks_managed",
            Self::Exception(_) => "exception",
            Self::NoIdentity => "no_identity",
            Self::HostNetwork => "host_network",
            Self::AlreadyInjected => "already_injected",
        }
    }
}

impl DenyReason {
    /// Bounded label value for metrics and logs.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unresolved => "unresolved_identity",
            Self::HostNetwork => "host_network",
            Self::ProxyUid => "proxy_uid",
            Self::FakedInjection => "faked_injection",
            Self::ReservedName => "reserved_name",
            Self::Strict => "strict",
        }
    }
}

impl Decision {
    /// Bounded outcome label: `skipped`, `injected` or `denied`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Skip { .. } => "skipped",
            Self::Inject { .. } => "injected",
            Self::Deny { .. } => "denied",
        }
    }
}
