//! The pure planner: a pod as received → skip, patch or deny (CONTRACT.md §1–§3).

mod decision;
mod patch;
mod render;
mod verify;

use json_patch::Patch;
use serde_json::json;

pub use decision::{Decision, DenyReason, InjectConfig, PodsWithoutIdentity, SkipReason};
pub use render::{
    FEDERATED_TOKEN_VOLUME, Rendered, XTABLES_LOCK_VOLUME, render, secret_volume_name,
};

use crate::model::IdentityIndex;
use crate::names;
use crate::pod::{ContainerList, ContainerView, PodView};
use crate::resolve::{ResolvedIdentity, resolve_identities};
use crate::status::{InjectionStatus, STATUS_VERSION, StatusIdentity};
use patch::PatchBuilder;

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
    if !pod.has_spec() || pod.containers(ContainerList::Regular).is_empty() {
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
    let resolved = match resolve_identities(pod.namespace(), pod.labels(), pod.annotations(), index)
    {
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
    if let Some(name) = taken_volume_name(pod, &rendered) {
        return deny(
            DenyReason::ReservedName,
            format!("volume {name:?} is reserved for podid's injected containers; rename it"),
        );
    }
    let patch = build_patch(pod, &resolved, rendered, &status, cfg);
    Decision::Inject {
        patch,
        status,
        warnings,
    }
}

/// A volume of the pod that has the name of one podid would add (the API server
/// would refuse the duplicate with a message that does not say why).
fn taken_volume_name<'p>(pod: &'p PodView<'_>, rendered: &Rendered) -> Option<&'p str> {
    let ours: Vec<&str> = rendered
        .volumes
        .iter()
        .filter_map(|v| v.get("name")?.as_str())
        .collect();
    pod.volume_names().find(|name| ours.contains(name))
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
        .find(|s| s.matches(labels))
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
fn proxy_uid_container<'p>(pod: &'p PodView<'_>, injected: bool) -> Option<&'p str> {
    [ContainerList::Init, ContainerList::Regular]
        .into_iter()
        .flat_map(|list| pod.containers(list))
        .filter(|c| !(injected && c.name() == names::PROXY_CONTAINER))
        .find(|c| pod.effective_run_as_user(c) == Some(names::PROXY_UID))
        .map(ContainerView::name)
}

fn network_warnings(pod: &PodView<'_>, resolved: &[ResolvedIdentity]) -> Vec<String> {
    if resolved.is_empty() {
        return Vec::new();
    }
    [ContainerList::Init, ContainerList::Regular]
        .into_iter()
        .flat_map(|list| pod.containers(list))
        .filter(|c| !is_injected(c.name()) && c.can_change_network())
        .map(|c| format!(
            "container {:?} is privileged or adds NET_ADMIN and could remove the IMDS redirect that keeps this pod's identities its own",
            c.name()
        ))
        .collect()
}

/// Whether a container of this name is one podid injects.
fn is_injected(name: &str) -> bool {
    matches!(name, names::INIT_CONTAINER | names::PROXY_CONTAINER)
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
        let name = first.name();
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
                if !c.sets_env(names::AZURE_CLIENT_ID_ENV) {
                    b.add_env(list, i, c.has_env(), entry.clone());
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

#[cfg(test)]
mod tests;
