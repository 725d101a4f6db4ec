//! The controller without an API server (`--cluster-file`): the cluster read from a file, ownership records in a local file, pod reports in the log.
//!
//! The planner, the executor and the ARM client are the ones the kube glue
//! feeds; only the edges differ: [`ClusterFile`] stands for the watchers,
//! [`FileStore`] for the state ConfigMap and [`LogPodSink`] for Events and
//! the pod condition. For demos, tests and trying podid against one VM.

mod source;
mod store;

#[cfg(test)]
mod tests;

use tracing::{info, warn};

pub use self::source::{ClusterFile, POLL_INTERVAL, SourceError, Stamp, stamp, watch_file};
pub use self::store::FileStore;
use crate::kube::{PodSink, PodWrite, PodWriteError};

/// Writes what the controller would tell pods as log lines (`event` and
/// `condition`, with the pod, reason and message as fields).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogPodSink;

impl PodSink for LogPodSink {
    async fn write(&self, write: &PodWrite) -> Result<(), PodWriteError> {
        let (namespace, pod) = (&write.pod.namespace, &write.pod.name);
        if let Some(c) = &write.condition {
            info!(%namespace, %pod, condition = podid_core::names::CONDITION_IDENTITY_ASSIGNED,
                  status = %c.status, reason = %c.reason, message = %c.message, "condition");
        }
        for e in &write.events {
            if e.warning {
                warn!(%namespace, %pod, reason = e.reason, note = %e.note, "event");
            } else {
                info!(%namespace, %pod, reason = e.reason, note = %e.note, "event");
            }
        }
        Ok(())
    }
}
