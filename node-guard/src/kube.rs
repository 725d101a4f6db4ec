//! The API server side: a watch of this node's pods, the Warning Events, and whether the guard's DaemonSet is being removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use podid_core::guard::{GuardPod, GuardPolicy};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::events::{ACTION, Blocked, EventSink, REASON, REPORTING_CONTROLLER};
use crate::metrics::Metrics;
use crate::sync::Snapshot;

/// Longest Event note the API server takes (events.k8s.io/v1 `note`: 1 kB).
const MAX_NOTE: usize = 1024;

/// The field selector of the pod watch: this node's pods only.
pub fn node_selector(node: &str) -> String {
    format!("spec.nodeName={node}")
}

/// Reads one watched pod; `None` (counted) when it cannot be read.
fn guard_pod(pod: &Pod, policy: &GuardPolicy, metrics: &Metrics) -> Option<(String, GuardPod)> {
    let read = serde_json::to_value(pod)
        .map_err(|e| e.to_string())
        .and_then(|v| GuardPod::from_json(&v, 0, policy).map_err(|e| e.to_string()));
    match read {
        Ok(p) => Some((format!("{}/{}", p.namespace, p.name), p)),
        Err(e) => {
            warn!(error = %e, "watched pod ignored");
            metrics.input_errors.inc();
            None
        }
    }
}

/// Watches the pods of `node` and publishes the whole list after the
/// initial listing and after every change; nothing before the first listing
/// is complete (a partial list would evict allowed pods).
pub async fn watch_pods(
    client: kube::Client,
    node: String,
    policy: GuardPolicy,
    metrics: Metrics,
    tx: watch::Sender<Snapshot>,
) {
    let config = watcher::Config::default().fields(&node_selector(&node));
    let mut stream = watcher::watcher(Api::<Pod>::all(client), config)
        .default_backoff()
        .boxed();
    let mut pods: BTreeMap<String, GuardPod> = BTreeMap::new();
    let mut relist: Option<BTreeMap<String, GuardPod>> = None;
    let mut listed = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(WatchEvent::Init) => relist = Some(BTreeMap::new()),
            Ok(WatchEvent::InitApply(pod)) => {
                if let (Some(buf), Some((k, p))) =
                    (relist.as_mut(), guard_pod(&pod, &policy, &metrics))
                {
                    buf.insert(k, p);
                }
                continue;
            }
            Ok(WatchEvent::InitDone) => {
                pods = relist.take().unwrap_or_default();
                if !listed {
                    info!(%node, pods = pods.len(), "pods of this node listed");
                }
                listed = true;
            }
            Ok(WatchEvent::Apply(pod)) => {
                if let Some((k, p)) = guard_pod(&pod, &policy, &metrics) {
                    pods.insert(k, p);
                }
            }
            Ok(WatchEvent::Delete(pod)) => {
                let namespace = pod.metadata.namespace.unwrap_or_default();
                pods.remove(&format!(
                    "{namespace}/{}",
                    pod.metadata.name.unwrap_or_default()
                ));
            }
            Err(e) => {
                warn!(error = %e, "pod watch failed; the rules stay as they are while it retries");
                metrics.input_errors.inc();
                continue;
            }
        }
        if listed
            && tx
                .send(Some(Arc::new(pods.values().cloned().collect())))
                .is_err()
        {
            return;
        }
    }
}

/// Whether the guard's DaemonSet is gone or being deleted: the only time
/// shutting down removes the rules (a rolling update keeps them, so the next
/// guard takes over without a window).
///
/// `helm uninstall` deletes the guard's ServiceAccount and Role while its
/// pods are still stopping, so a 401 (its token died with the account) or a
/// 403 (its Role is gone) means the same; any other failure is an error and
/// the caller keeps the rules.
pub async fn daemonset_is_going(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<bool, kube::Error> {
    let api: Api<DaemonSet> = Api::namespaced(client, namespace);
    match api.get_opt(name).await {
        Ok(ds) => Ok(ds.is_none_or(|ds| ds.metadata.deletion_timestamp.is_some())),
        Err(kube::Error::Api(status)) if matches!(status.code, 401 | 403) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Events through events.k8s.io/v1 (RBAC: `create` and `patch` on events).
#[derive(Clone)]
pub struct KubeEvents {
    recorder: Recorder,
}

impl std::fmt::Debug for KubeEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeEvents").finish_non_exhaustive()
    }
}

impl KubeEvents {
    /// Events reported by `instance` (the guard pod's name).
    pub fn new(client: kube::Client, instance: String) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: Some(instance),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }
}

impl EventSink for KubeEvents {
    async fn publish(&self, blocked: &Blocked) -> Result<(), String> {
        let pod = &blocked.pod;
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(pod.namespace.clone()),
            name: Some(pod.name.clone()),
            uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
            ..ObjectReference::default()
        };
        let mut note = blocked.note.clone();
        if note.len() > MAX_NOTE {
            let mut cut = MAX_NOTE - 3;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push('…');
        }
        let event = Event {
            type_: EventType::Warning,
            reason: REASON.into(),
            note: Some(note),
            action: ACTION.into(),
            secondary: None,
        };
        self.recorder
            .publish(&event, &reference)
            .await
            .map_err(|e| e.to_string())
    }
}
