//! The pure planner: a pod as received → skip, patch or deny (CONTRACT.md §1–§3).

mod patch;
mod render;
mod verify;

use json_patch::Patch;
use serde_json::{Value, json};

pub use render::{Rendered, XTABLES_LOCK_VOLUME, render, secret_volume_name};

use crate::model::IdentityIndex;
use crate::names;
use crate::pod::{self, ContainerList, PodView};
use crate::proxy_config::ProxySettings;
use crate::resolve::{ResolvedIdentity, resolve_identities};
use crate::selector::LabelSelector;
use crate::status::{InjectionStatus, Layout, STATUS_VERSION, StatusIdentity};
use patch::PatchBuilder;

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

// === the planner ===

/// Decides what to do with a pod being created.
///
/// # Guarantees
/// - The patch holds only `add` operations against the object as received.
/// - Planning the patched pod again gives `Skip { AlreadyInjected }` (idempotence).
/// - Every denial message names the pod and the cause.
pub fn plan(pod: &PodView<'_>, index: &IdentityIndex, cfg: &InjectConfig) -> Decision {
    let deny = |reason, cause: String| Decision::Deny {
        reason,
        message: format!("{pod}: {cause}"),
    };
    if !pod.raw().get("spec").is_some_and(Value::is_object)
        || pod.containers(ContainerList::Regular).is_empty()
    {
        return deny(
            DenyReason::Malformed,
            "the object has no spec.containers; is it a Pod?".into(),
        );
    }
    if let Some(reason) = skip_reason(pod, cfg) {
        return Decision::Skip {
            reason,
            warnings: Vec::new(),
        };
    }
    let injected = match injection_state(pod) {
        Ok(injected) => injected,
        Err(cause) => return deny(DenyReason::FakedInjection, cause),
    };
    let resolved =
        match resolve_identities(pod.namespace(), &pod.labels(), &pod.annotations(), index) {
            Ok(resolved) => resolved,
            Err(e) => return deny(DenyReason::Unresolved, e.to_string()),
        };
    if pod.host_network() {
        if !resolved.is_empty() {
            return deny(
                DenyReason::HostNetwork,
                "hostNetwork pods cannot use identities: the IMDS redirect would change the node's network".into(),
            );
        }
        let warning =
            format!("{pod}: podid cannot protect IMDS for hostNetwork pods; it is not injected");
        return Decision::Skip {
            reason: SkipReason::HostNetwork,
            warnings: vec![warning],
        };
    }
    if let Some(name) = proxy_uid_container(pod, injected) {
        return deny(
            DenyReason::ProxyUid,
            format!(
                "container {name:?} runs as uid {}, the podid proxy's uid, which bypasses the IMDS redirect; choose another uid",
                names::PROXY_UID
            ),
        );
    }
    let warnings = network_warnings(pod, &resolved);
    if cfg.strict && !warnings.is_empty() {
        return deny(DenyReason::Strict, warnings.join("; "));
    }
    let warnings: Vec<String> = warnings
        .into_iter()
        .map(|w| format!("{pod}: {w}"))
        .collect();
    if resolved.is_empty() && cfg.pods_without_identity == PodsWithoutIdentity::Skip && !injected {
        return Decision::Skip {
            reason: SkipReason::NoIdentity,
            warnings,
        };
    }
    let rendered = render(&resolved, cfg);
    let status = injection_status(&resolved, &rendered, cfg);
    if injected {
        return match verify_status(pod, &status)
            .and_then(|()| verify::verify_injected(pod, &rendered, cfg.native_sidecars))
        {
            Ok(()) => Decision::Skip {
                reason: SkipReason::AlreadyInjected,
                warnings,
            },
            Err(cause) => deny(
                DenyReason::FakedInjection,
                format!(
                    "{cause}; remove podid's containers and annotation and let the webhook inject"
                ),
            ),
        };
    }
    let patch = build_patch(pod, &resolved, rendered, &status, cfg);
    Decision::Inject {
        patch,
        status,
        warnings,
    }
}

fn skip_reason(pod: &PodView<'_>, cfg: &InjectConfig) -> Option<SkipReason> {
    let ns = pod.namespace();
    if names::SYSTEM_NAMESPACES.contains(&ns) || cfg.excluded_namespaces.iter().any(|n| n == ns) {
        return Some(SkipReason::ExcludedNamespace);
    }
    let labels = pod.labels();
    if labels.get(names::INJECT_LABEL).map(String::as_str) == Some(names::INJECT_DISABLED) {
        return Some(SkipReason::OptedOut);
    }
    if pod.annotations().contains_key(names::MIRROR_ANNOTATION) {
        return Some(SkipReason::MirrorPod);
    }
    if labels.get(names::AKS_MANAGED_BY_LABEL).map(String::as_str)
        == Some(names::AKS_MANAGED_BY_VALUE)
    {
        return Some(SkipReason::AksManaged);
    }
    cfg.exceptions
        .iter()
        .find(|s| s.matches(&labels))
        .map(|s| SkipReason::Exception(s.to_string()))
}

/// `Ok(true)` when both injected containers are present, `Ok(false)` when neither nor the
/// status is, and `Err` for any other mix, which only a pod's author could produce.
fn injection_state(pod: &PodView<'_>) -> Result<bool, String> {
    let has = |name| {
        pod.find_container(ContainerList::Init, name).is_some()
            || pod.find_container(ContainerList::Regular, name).is_some()
    };
    let (init, proxy) = (has(names::INIT_CONTAINER), has(names::PROXY_CONTAINER));
    let status = pod.annotations().contains_key(names::STATUS_ANNOTATION);
    match (init, proxy, status) {
        (true, true, _) => Ok(true),
        (false, false, false) => Ok(false),
        _ => Err(format!(
            "it carries {} without the rest of podid's injection; injection cannot be declared by the pod's author",
            [
                (init, names::INIT_CONTAINER),
                (proxy, names::PROXY_CONTAINER),
                (status, names::STATUS_ANNOTATION)
            ]
            .iter()
            .filter(|(present, _)| *present)
            .map(|(_, n)| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(" and ")
        )),
    }
}

fn verify_status(pod: &PodView<'_>, want: &InjectionStatus) -> Result<(), String> {
    let have = pod
        .annotations()
        .get(names::STATUS_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    match serde_json::from_str::<InjectionStatus>(&have) {
        Ok(have) if &have == want => Ok(()),
        _ => Err(format!(
            "annotation {:?} does not match what podid injects",
            names::STATUS_ANNOTATION
        )),
    }
}

/// The first container, other than podid's verified proxy, that runs as the proxy's uid.
fn proxy_uid_container<'a>(pod: &PodView<'a>, injected: bool) -> Option<&'a str> {
    [ContainerList::Init, ContainerList::Regular]
        .into_iter()
        .flat_map(|list| pod.containers(list))
        .filter(|c| !(injected && pod::container_name(c) == names::PROXY_CONTAINER))
        .find(|c| pod.effective_run_as_user(c) == Some(names::PROXY_UID))
        .map(pod::container_name)
}

fn network_warnings(pod: &PodView<'_>, resolved: &[ResolvedIdentity]) -> Vec<String> {
    if resolved.is_empty() {
        return Vec::new();
    }
    [ContainerList::Init, ContainerList::Regular]
        .into_iter()
        .flat_map(|list| pod.containers(list))
        .filter(|c| !is_injected(c) && pod::can_change_network(c))
        .map(|c| format!(
            "container {:?} is privileged or adds NET_ADMIN and could remove the IMDS redirect that keeps this pod's identities its own",
            pod::container_name(c)
        ))
        .collect()
}

fn is_injected(c: &Value) -> bool {
    matches!(
        pod::container_name(c),
        names::INIT_CONTAINER | names::PROXY_CONTAINER
    )
}

fn injection_status(
    resolved: &[ResolvedIdentity],
    rendered: &Rendered,
    cfg: &InjectConfig,
) -> InjectionStatus {
    let native = cfg.native_sidecars;
    let mut init_containers = vec![names::INIT_CONTAINER.to_owned()];
    if native {
        init_containers.push(names::PROXY_CONTAINER.to_owned());
    }
    InjectionStatus {
        version: STATUS_VERSION,
        layout: cfg.layout(),
        init_containers,
        containers: if native {
            Vec::new()
        } else {
            vec![names::PROXY_CONTAINER.to_owned()]
        },
        volumes: rendered
            .volumes
            .iter()
            .filter_map(|v| v.get("name")?.as_str().map(str::to_owned))
            .collect(),
        identities: resolved.iter().map(StatusIdentity::from_resolved).collect(),
    }
}

fn build_patch(
    pod: &PodView<'_>,
    resolved: &[ResolvedIdentity],
    rendered: Rendered,
    status: &InjectionStatus,
    cfg: &InjectConfig,
) -> Patch {
    let mut b = PatchBuilder::new();
    b.add_meta_entry(pod, "labels", names::INJECTED_LABEL, "true");
    let status_json = serde_json::to_string(status).unwrap_or_default();
    b.add_meta_entry(pod, "annotations", names::STATUS_ANNOTATION, &status_json);
    let first_app = pod.containers(ContainerList::Regular).first();
    if let Some(first) = first_app.filter(|_| {
        !pod.annotations()
            .contains_key(names::DEFAULT_CONTAINER_ANNOTATION)
    }) {
        let name = pod::container_name(first);
        b.add_meta_entry(
            pod,
            "annotations",
            names::DEFAULT_CONTAINER_ANNOTATION,
            name,
        );
    }
    // Env before inserting containers, so the indexes are those of the object as received.
    if let Some(default) = resolved.first() {
        let entry =
            json!({"name": names::AZURE_CLIENT_ID_ENV, "value": default.identity.spec.client_id});
        // User init containers can reach the proxy only when it is a native sidecar started before them.
        let lists: &[ContainerList] = if cfg.native_sidecars {
            &[ContainerList::Init, ContainerList::Regular]
        } else {
            &[ContainerList::Regular]
        };
        for &list in lists {
            for (i, c) in pod.containers(list).iter().enumerate() {
                if !sets_env(c, names::AZURE_CLIENT_ID_ENV) {
                    b.add_env(list, i, c, entry.clone());
                }
            }
        }
    }
    let Rendered {
        init,
        proxy,
        volumes,
    } = rendered;
    if cfg.native_sidecars {
        b.prepend(pod, "initContainers", vec![init, proxy]);
    } else {
        b.prepend(pod, "initContainers", vec![init]);
        b.prepend(pod, "containers", vec![proxy]);
    }
    b.append(pod, "volumes", volumes);
    b.build()
}

fn sets_env(c: &Value, name: &str) -> bool {
    c.get("env").and_then(Value::as_array).is_some_and(|env| {
        env.iter()
            .any(|e| e.get("name").and_then(Value::as_str) == Some(name))
    })
}

#[cfg(test)]
mod tests;
