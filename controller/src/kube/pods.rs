//! Writes what the controller tells pods: Events (events.k8s.io/v1) and the `podid.io/IdentityAssigned` condition (pods/status patch).

use std::future::Future;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use podid_core::names;
use serde_json::{Value, json};

use super::status::{PodEvent, PodWrite};

/// The `action` of every Event the controller writes.
pub const EVENT_ACTION: &str = "AssignIdentity";
/// The reporting controller named on Events.
pub const REPORTING_CONTROLLER: &str = "podid.io/controller";
/// Event notes are capped by the API server at 1 KiB.
const MAX_NOTE: usize = 1024;

/// Why a write about a pod failed.
#[derive(Debug, thiserror::Error)]
pub enum PodWriteError {
    /// The Event could not be created.
    #[error("writing an Event about {pod}: {source}")]
    Event {
        /// `namespace/name`.
        pod: String,
        /// The API error.
        source: kube::Error,
    },
    /// The condition patch was refused or failed.
    #[error("patching the condition of {pod}: {source}")]
    Condition {
        /// `namespace/name`.
        pod: String,
        /// The API error.
        source: kube::Error,
    },
}

impl PodWriteError {
    /// Bounded label value for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Event { .. } => "event",
            Self::Condition { .. } => "condition",
        }
    }

    /// Whether the pod is gone or was replaced by a namesake (404, 409, or 422
    /// from the uid precondition): nothing to retry.
    pub fn pod_is_gone(&self) -> bool {
        let source = match self {
            Self::Event { source, .. } | Self::Condition { source, .. } => source,
        };
        matches!(source, kube::Error::Api(s) if matches!(s.code, 404 | 409 | 422))
    }
}

/// Somewhere pod writes go (the API server, or a fake in tests).
pub trait PodSink: Send + Sync + 'static {
    /// Writes the condition, then the Events, of one pod.
    fn write(&self, write: &PodWrite) -> impl Future<Output = Result<(), PodWriteError>> + Send;
}

/// Writes through the Kubernetes API with the least RBAC: `create`/`patch`
/// on events.k8s.io Events, `patch` on pods/status.
#[derive(Clone)]
pub struct KubePodSink {
    client: kube::Client,
    recorder: Recorder,
}

impl std::fmt::Debug for KubePodSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePodSink").finish_non_exhaustive()
    }
}

impl KubePodSink {
    /// A sink whose Events name `instance` (the pod name) as reporting instance.
    pub fn new(client: kube::Client, instance: String) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: Some(instance),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }
}

/// The strategic-merge patch of pods/status that sets the condition (merged by `type`).
pub fn condition_patch(write: &PodWrite, now: Timestamp) -> Option<Value> {
    let c = write.condition.as_ref()?;
    let mut condition = json!({
        "type": names::CONDITION_IDENTITY_ASSIGNED,
        "status": c.status,
        "reason": c.reason,
        "message": c.message,
    });
    if write.transition
        && let Some(map) = condition.as_object_mut()
    {
        let at = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        map.insert("lastTransitionTime".into(), at.into());
    }
    Some(json!({
        "metadata": {"uid": write.uid},
        "status": {"conditions": [condition]},
    }))
}

/// The pod an Event is about (with its uid, so it attaches to this very pod).
pub fn pod_reference(write: &PodWrite) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(write.pod.namespace.clone()),
        name: Some(write.pod.name.clone()),
        uid: Some(write.uid.clone()),
        ..ObjectReference::default()
    }
}

/// The kube-runtime Event for one [`PodEvent`].
pub fn event(e: &PodEvent) -> Event {
    let mut note = e.note.clone();
    if note.len() > MAX_NOTE {
        let mut cut = MAX_NOTE - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push('…');
    }
    Event {
        type_: if e.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: e.reason.into(),
        note: Some(note),
        action: EVENT_ACTION.into(),
        secondary: None,
    }
}

impl PodSink for KubePodSink {
    async fn write(&self, write: &PodWrite) -> Result<(), PodWriteError> {
        let pod = write.pod.to_string();
        if let Some(patch) = condition_patch(write, Timestamp::now()) {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &write.pod.namespace);
            api.patch_status(
                &write.pod.name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .map_err(|source| PodWriteError::Condition {
                pod: pod.clone(),
                source,
            })?;
        }
        let reference = pod_reference(write);
        for e in &write.events {
            self.recorder
                .publish(&event(e), &reference)
                .await
                .map_err(|source| PodWriteError::Event {
                    pod: pod.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}
