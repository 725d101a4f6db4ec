//! File mode: the node's pods from a JSON or YAML file, re-read when it changes (tests, the benchmark, nodes without an API server).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use podid_core::guard::{GuardPolicy, parse_pods_file};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::sync::Snapshot;

/// Polls `path` every `poll` and publishes each new, valid pod list.
///
/// A file that is missing or does not parse is reported and ignored: the
/// last good list (and the rules made from it) stays in force.
pub async fn watch_file(
    path: PathBuf,
    poll: Duration,
    policy: GuardPolicy,
    metrics: Metrics,
    tx: watch::Sender<Snapshot>,
) {
    let mut last: Option<Vec<u8>> = None;
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                if last.is_some() || metrics.input_errors.get() == 0 {
                    warn!(path = %path.display(), error = %e, "pods file unreadable; keeping the last pod list");
                }
                metrics.input_errors.inc();
                last = None;
                continue;
            }
        };
        if last.as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        match parse_pods_file(&text, &policy) {
            Ok(pods) => {
                info!(path = %path.display(), pods = pods.len(), "pods file read");
                if tx.send(Some(Arc::new(pods))).is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "pods file ignored; keeping the last pod list");
                metrics.input_errors.inc();
            }
        }
        last = Some(bytes);
    }
}
