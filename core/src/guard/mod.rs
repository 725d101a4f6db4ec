//! podid-node-guard's decisions: which pods of a node may reach the node's IMDS, as plain data.
//!
//! The guard keeps an nftables set of the pod IPs allowed to reach
//! `169.254.169.254`; this module decides that set from a pod list
//! ([`decide`], [`AllowedSet::from_pods`]) and [`nft`] turns it, or the change
//! to it, into one atomic `nft -f -` transaction. Nothing here runs a program.

pub mod nft;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::names;
use crate::pod::{ContainerList, PodView};
use crate::selector::LabelSelector;
use crate::status::InjectionStatus;

/// What the install allows besides injected pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardPolicy {
    /// Pods matching one of these (the webhook's exception selectors) are allowed.
    pub exceptions: Vec<LabelSelector>,
    /// Every pod of these namespaces is allowed (kube-system components the install names).
    pub allowed_namespaces: BTreeSet<String>,
    /// Namespaces where `kubernetes.azure.com/managedby: aks` is honoured; `*` means every namespace.
    ///
    /// Anyone who creates a pod can write that label, so by default only
    /// kube-system's count: AKS runs its add-ons there.
    pub aks_label_namespaces: BTreeSet<String>,
    /// When set, an injected pod's `podid-proxy` container must run exactly this image.
    pub proxy_image: Option<String>,
}

/// One pod as the guard sees it, read from its Kubernetes JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardPod {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` (empty in hand-written pod files).
    pub uid: String,
    /// The pod's IPv4 addresses (`status.podIPs`, else `status.podIP`).
    pub ips: Vec<Ipv4Addr>,
    /// The decision for this pod.
    pub verdict: Verdict,
}

/// Why a pod may reach IMDS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllowReason {
    /// Injected by podid and its proxy is running.
    Injected,
    /// Labelled `kubernetes.azure.com/managedby: aks` in a namespace where that counts.
    AksManaged,
    /// Matches an exception selector of the install.
    Exception,
    /// In a namespace the install allows as a whole.
    Namespace,
}

/// Why a pod may not reach IMDS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockReason {
    /// Not labelled `podid.io/injected: "true"`.
    NotInjected,
    /// Labelled injected, but `podid.io/status` is missing or does not parse.
    StatusUnreadable,
    /// Labelled injected, but has no `podid-proxy` container (or not the install's image).
    NoProxy,
    /// Injected, but its `podid-proxy` is not running (yet, or any more).
    ProxyNotRunning,
    /// Injected with identities that are all federated: it needs no IMDS (its own
    /// podid-init rejects IMDS too; the guard also covers what slips below that).
    Federated,
}

/// The decision for one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Its IPs go into the allowed set.
    Allow(AllowReason),
    /// Its IPs stay out of the set: IMDS answers it with a 403 (TCP 80) or drops it.
    Block(BlockReason),
    /// `hostNetwork: true`: it shares the node's addresses and leaves through
    /// the output hook, which the guard does not touch. Outside its reach.
    HostNetwork,
    /// Succeeded or Failed: its addresses are released and may belong to a new pod.
    Finished,
}

/// A pod object that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Not a JSON object with `metadata.name` and `metadata.namespace`.
    #[error("pod #{index}: {message}")]
    Invalid {
        /// Position in the input list.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The pods file does not parse.
    #[error("pods file: {0}")]
    Syntax(String),
}

// === impl AllowReason / BlockReason / Verdict ===

impl AllowReason {
    /// Stable name (metrics, logs).
    pub fn kind(self) -> &'static str {
        match self {
            Self::Injected => "injected",
            Self::AksManaged => "aks_managed",
            Self::Exception => "exception",
            Self::Namespace => "namespace",
        }
    }
}

impl BlockReason {
    /// Stable name (metric label `reason`).
    pub fn kind(self) -> &'static str {
        match self {
            Self::NotInjected => "not_injected",
            Self::StatusUnreadable => "status_unreadable",
            Self::NoProxy => "no_proxy",
            Self::ProxyNotRunning => "proxy_not_running",
            Self::Federated => "federated",
        }
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotInjected => "is not injected by podid (no podid.io/injected=true label)",
            Self::StatusUnreadable => {
                "is labelled injected but its podid.io/status annotation is missing or unreadable"
            }
            Self::NoProxy => {
                "is labelled injected but has no podid-proxy container of this install"
            }
            Self::ProxyNotRunning => "is injected but its podid-proxy container is not running",
            Self::Federated => {
                "needs no IMDS: every identity it uses is federated (tokens come from Entra ID)"
            }
        })
    }
}

impl Verdict {
    /// Stable name (metric label `verdict`).
    pub fn kind(self) -> &'static str {
        match self {
            Self::Allow(_) => "allowed",
            Self::Block(_) => "blocked",
            Self::HostNetwork => "host_network",
            Self::Finished => "finished",
        }
    }
}

// === impl GuardPod ===

impl GuardPod {
    /// Reads a pod's JSON (`index` names it in errors) and decides it.
    pub fn from_json(raw: &Value, index: usize, policy: &GuardPolicy) -> Result<Self, GuardError> {
        let invalid = |message: &str| GuardError::Invalid {
            index,
            message: message.to_owned(),
        };
        if !raw.is_object() {
            return Err(invalid("not a JSON object"));
        }
        let namespace = raw
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("metadata.namespace is missing"))?;
        let view = PodView::new(raw, namespace);
        if view.name().is_empty() {
            return Err(invalid("metadata.name is missing"));
        }
        let uid = raw.pointer("/metadata/uid").and_then(Value::as_str);
        Ok(Self {
            namespace: namespace.to_owned(),
            name: view.name().to_owned(),
            uid: uid.unwrap_or_default().to_owned(),
            ips: pod_ips(raw),
            verdict: decide(&view, policy),
        })
    }

    /// Whether its addresses belong in the allowed set.
    pub fn allowed(&self) -> bool {
        matches!(self.verdict, Verdict::Allow(_))
    }
}

impl fmt::Display for GuardPod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The pod's IPv4 addresses; IPv6 ones are outside an `ip` family table.
fn pod_ips(raw: &Value) -> Vec<Ipv4Addr> {
    let listed = raw.pointer("/status/podIPs").and_then(Value::as_array);
    let mut ips: Vec<Ipv4Addr> = listed
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("ip")?.as_str()?.parse().ok())
        .collect();
    if ips.is_empty()
        && let Some(ip) = raw.pointer("/status/podIP").and_then(Value::as_str)
        && let Ok(ip) = ip.parse()
    {
        ips.push(ip);
    }
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// The decision for one pod (checks from the cheapest and widest to the injected-pod proof).
pub fn decide(pod: &PodView<'_>, policy: &GuardPolicy) -> Verdict {
    if pod.host_network() {
        return Verdict::HostNetwork;
    }
    let phase = pod
        .raw()
        .and_then(|raw| raw.pointer("/status/phase"))
        .and_then(Value::as_str);
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Verdict::Finished;
    }
    let labels = pod.labels();
    let aks = labels.get(names::AKS_MANAGED_BY_LABEL).map(String::as_str);
    let aks_counts = policy.aks_label_namespaces.contains(pod.namespace())
        || policy.aks_label_namespaces.contains("*");
    if aks == Some(names::AKS_MANAGED_BY_VALUE) && aks_counts {
        return Verdict::Allow(AllowReason::AksManaged);
    }
    if policy.allowed_namespaces.contains(pod.namespace()) {
        return Verdict::Allow(AllowReason::Namespace);
    }
    if policy.exceptions.iter().any(|s| s.matches(labels)) {
        return Verdict::Allow(AllowReason::Exception);
    }
    match injected(pod, policy) {
        Ok(status) if all_federated(&status) => Verdict::Block(BlockReason::Federated),
        Ok(_) => Verdict::Allow(AllowReason::Injected),
        Err(reason) => Verdict::Block(reason),
    }
}

/// Whether the webhook resolved identities for the pod and every one is federated.
/// Trusting the annotation here can only take access away: a pod that claims to be
/// federated blocks itself.
fn all_federated(status: &InjectionStatus) -> bool {
    !status.identities.is_empty()
        && status
            .identities
            .iter()
            .all(|i| i.credential == names::CREDENTIAL_FEDERATED)
}

/// The proof that a pod is injected: label, a status annotation that parses,
/// a `podid-proxy` container (of the install's image, when known) that is running.
fn injected(pod: &PodView<'_>, policy: &GuardPolicy) -> Result<InjectionStatus, BlockReason> {
    if pod.labels().get(names::INJECTED_LABEL).map(String::as_str) != Some("true") {
        return Err(BlockReason::NotInjected);
    }
    let status = pod.annotations().get(names::STATUS_ANNOTATION).cloned();
    let parsed = status.and_then(|s| serde_json::from_str::<InjectionStatus>(&s).ok());
    let Some(parsed) = parsed else {
        return Err(BlockReason::StatusUnreadable);
    };
    // Native sidecar (an init container) or legacy (a regular container).
    let (list, proxy) = [ContainerList::Init, ContainerList::Regular]
        .into_iter()
        .find_map(|list| Some((list, pod.find_container(list, names::PROXY_CONTAINER)?.1)))
        .ok_or(BlockReason::NoProxy)?;
    let image = proxy.image();
    if policy
        .proxy_image
        .as_deref()
        .is_some_and(|want| image != Some(want))
    {
        return Err(BlockReason::NoProxy);
    }
    let statuses = match list {
        ContainerList::Init => "/status/initContainerStatuses",
        ContainerList::Regular => "/status/containerStatuses",
    };
    let running = pod
        .raw()
        .and_then(|raw| raw.pointer(statuses))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.get("name").and_then(Value::as_str) == Some(names::PROXY_CONTAINER))
        .any(|s| s.pointer("/state/running").is_some_and(Value::is_object));
    if running {
        Ok(parsed)
    } else {
        Err(BlockReason::ProxyNotRunning)
    }
}

/// The allowed addresses of a node's pods, and which pod holds each address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedSet {
    /// Addresses that may reach IMDS.
    pub allowed: BTreeSet<Ipv4Addr>,
    /// Every address of a live, non-host-network pod, with the pod holding it
    /// (a blocked one, when an allowed and a blocked pod claim it).
    pub owners: BTreeMap<Ipv4Addr, GuardPod>,
}

impl AllowedSet {
    /// Folds the pods' verdicts into the set.
    ///
    /// An address claimed by an allowed pod and by a blocked one (an address
    /// reused while the old pod's deletion is still in flight) stays out of
    /// the set: the guard fails closed.
    pub fn from_pods<'a>(pods: impl IntoIterator<Item = &'a GuardPod>) -> Self {
        let mut set = Self::default();
        let mut denied = BTreeSet::new();
        for pod in pods {
            if matches!(pod.verdict, Verdict::HostNetwork | Verdict::Finished) {
                continue;
            }
            for ip in &pod.ips {
                if pod.allowed() {
                    set.allowed.insert(*ip);
                } else {
                    denied.insert(*ip);
                }
                let owner = set.owners.entry(*ip).or_insert_with(|| pod.clone());
                if !pod.allowed() {
                    *owner = pod.clone();
                }
            }
        }
        set.allowed.retain(|ip| !denied.contains(ip));
        set
    }
}

/// Reads a pods file: a JSON or YAML list of pods, a `kind: List` (as
/// `kubectl get pods -o json` prints it), or YAML documents of one pod each.
pub fn parse_pods_file(text: &str, policy: &GuardPolicy) -> Result<Vec<GuardPod>, GuardError> {
    use serde::Deserialize as _;
    let mut raw = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| GuardError::Syntax(e.to_string()))?;
        match value {
            Value::Null => {}
            Value::Array(items) => raw.extend(items),
            Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = o.get("items").and_then(Value::as_array);
                raw.extend(items.into_iter().flatten().cloned());
            }
            other => raw.push(other),
        }
    }
    raw.iter()
        .enumerate()
        .map(|(i, pod)| GuardPod::from_json(pod, i, policy))
        .collect()
}

#[cfg(test)]
mod tests;
