//! Keeps the kernel's set equal to the allowed addresses of the latest pod list: a full sync first, then deltas.
//!
//! # Guarantees
//! - Nothing is written before the first complete pod list: the rules a
//!   previous guard left keep protecting until then (no open window), and a
//!   first install only adds the dropping chains together with a filled set
//!   (no shut window).
//! - A failed transaction changed nothing; the next sync is a full one.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use podid_core::guard::nft::{self, RuleConfig, SetDelta};
use podid_core::guard::{AllowedSet, GuardPod};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, VerdictLabels};
use crate::nft::{Netfilter, NftError};

/// The latest allowed set, shared with the responder (which names the pod behind an address).
pub type SharedSet = Arc<RwLock<AllowedSet>>;

/// A complete pod list of the node; `None` until the first one is known.
pub type Snapshot = Option<Arc<Vec<GuardPod>>>;

/// Every [`podid_core::guard::Verdict::kind`], so each gauge series exists from the start.
const VERDICTS: [&str; 4] = ["allowed", "blocked", "host_network", "finished"];

/// How soon a failed transaction is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The rule keeper.
#[derive(Debug)]
pub struct Syncer<N> {
    nft: N,
    rules: RuleConfig,
    metrics: Metrics,
    shared: SharedSet,
    synced: Arc<AtomicBool>,
    /// What the kernel holds, as far as the guard knows; `None`: unknown (next sync is full).
    applied: Option<BTreeSet<Ipv4Addr>>,
}

impl<N: Netfilter> Syncer<N> {
    /// A keeper that has not written anything yet.
    pub fn new(
        nft: N,
        rules: RuleConfig,
        metrics: Metrics,
        shared: SharedSet,
        synced: Arc<AtomicBool>,
    ) -> Self {
        Self {
            nft,
            rules,
            metrics,
            shared,
            synced,
            applied: None,
        }
    }

    /// Brings the kernel in step with `pods`; `full` rewrites everything even if nothing changed.
    pub async fn sync(&mut self, pods: &[GuardPod], full: bool) -> Result<(), NftError> {
        let set = AllowedSet::from_pods(pods);
        self.count_pods(pods);
        let (kind, script) = match (&self.applied, full) {
            (Some(applied), false) => {
                let change = SetDelta::between(applied, &set.allowed);
                if change.is_empty() {
                    self.publish(set);
                    return Ok(());
                }
                debug!(add = ?change.add, remove = ?change.remove, "set delta");
                ("delta", nft::delta(&self.rules, &change))
            }
            _ => ("full", nft::full_sync(&self.rules, &set.allowed)),
        };
        let started = Instant::now();
        let result = self.nft.apply(&script).await;
        self.metrics.sync(kind, result.is_ok(), started.elapsed());
        match result {
            Ok(()) => {
                if kind == "full" {
                    info!(allowed = set.allowed.len(), pods = pods.len(), table = %self.rules.table, "rules synced");
                }
                self.applied = Some(set.allowed.clone());
                self.metrics
                    .allowed_ips
                    .set(i64::try_from(set.allowed.len()).unwrap_or(i64::MAX));
                self.publish(set);
                self.synced.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.applied = None;
                Err(e)
            }
        }
    }

    fn publish(&self, set: AllowedSet) {
        // A poisoned lock only means a reader panicked; the data is still whole.
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = set;
    }

    fn count_pods(&self, pods: &[GuardPod]) {
        for verdict in VERDICTS {
            let n = pods.iter().filter(|p| p.verdict.kind() == verdict).count();
            self.metrics
                .pods
                .get_or_create(&VerdictLabels { verdict })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Follows `snapshots` until `shutdown`: a sync for every new list, a full
    /// one every `resync`, a retry a second after a failure.
    pub async fn drive(
        mut self,
        mut snapshots: watch::Receiver<Snapshot>,
        resync: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut next_full = tokio::time::Instant::now() + resync;
        let mut retry: Option<tokio::time::Instant> = None;
        loop {
            let full = tokio::select! {
                () = &mut shutdown => return,
                changed = snapshots.changed() => {
                    if changed.is_err() { return }
                    false
                }
                () = tokio::time::sleep_until(next_full) => true,
                () = sleep_until_opt(retry) => true,
            };
            let Some(pods) = snapshots.borrow_and_update().clone() else {
                continue;
            };
            if full {
                next_full = tokio::time::Instant::now() + resync;
            }
            match self.sync(&pods, full).await {
                Ok(()) => retry = None,
                Err(e) => {
                    warn!(error = %e, "rules not applied; retrying with a full sync");
                    retry = Some(tokio::time::Instant::now() + RETRY_AFTER);
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use podid_core::guard::GuardPolicy;
    use serde_json::json;

    use super::*;

    /// Records scripts; fails while `fail` is set.
    #[derive(Debug, Default)]
    struct Recorder {
        scripts: Mutex<Vec<String>>,
        fail: AtomicBool,
    }

    impl Netfilter for Arc<Recorder> {
        async fn apply(&self, script: &str) -> Result<(), NftError> {
            self.scripts.lock().unwrap().push(script.to_owned());
            if self.fail.load(Ordering::Relaxed) {
                return Err(NftError::Timeout {
                    program: "nft".into(),
                });
            }
            Ok(())
        }
    }

    fn pods(allowed: &[&str]) -> Vec<GuardPod> {
        let policy = GuardPolicy {
            allowed_namespaces: ["sys".to_owned()].into(),
            ..GuardPolicy::default()
        };
        allowed
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let pod = json!({"metadata": {"name": format!("p{i}"), "namespace": "sys"}, "status": {"podIP": ip}});
                GuardPod::from_json(&pod, i, &policy).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn full_first_then_deltas_nothing_for_no_change_and_full_again_after_a_failure() {
        let nft = Arc::new(Recorder::default());
        let rules = RuleConfig {
            table: "t".into(),
            imds: "169.254.169.254:80".parse().unwrap(),
            responder_ip: None,
            responder_port: 15393,
        };
        let synced = Arc::new(AtomicBool::new(false));
        let mut syncer = Syncer::new(
            nft.clone(),
            rules,
            Metrics::new().0,
            SharedSet::default(),
            synced.clone(),
        );
        let script = |i: usize| nft.scripts.lock().unwrap()[i].clone();

        syncer.sync(&pods(&["10.0.0.1"]), false).await.unwrap();
        assert!(script(0).contains("add chain") && script(0).contains("{ 10.0.0.1 }"));
        assert!(synced.load(Ordering::Acquire));
        syncer.sync(&pods(&["10.0.0.1"]), false).await.unwrap();
        assert_eq!(
            nft.scripts.lock().unwrap().len(),
            1,
            "no change, no transaction"
        );
        syncer
            .sync(&pods(&["10.0.0.1", "10.0.0.2"]), false)
            .await
            .unwrap();
        assert_eq!(script(1), "add element ip t allowed { 10.0.0.2 }\n");

        nft.fail.store(true, Ordering::Relaxed);
        assert!(syncer.sync(&pods(&["10.0.0.2"]), false).await.is_err());
        nft.fail.store(false, Ordering::Relaxed);
        syncer.sync(&pods(&["10.0.0.2"]), false).await.unwrap();
        assert!(
            script(3).contains("flush set ip t allowed"),
            "after a failure the kernel's state is unknown: full sync"
        );
        assert_eq!(
            syncer.shared.read().unwrap().allowed,
            ["10.0.0.2".parse().unwrap()].into()
        );
    }
}
