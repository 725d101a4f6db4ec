//! The guard's Prometheus metrics (prefix `podid_node_guard_`), every label from a fixed list.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of a blocked attempt: the pod's [`podid_core::guard::BlockReason::kind`], or `unknown_pod`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why it was blocked.
    pub reason: &'static str,
}

/// Labels of a sync.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// `full` or `delta`.
    pub kind: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels of the pod gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// [`podid_core::guard::Verdict::kind`].
    pub verdict: &'static str,
}

/// Labels of an Event outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `sent`, `failed` or `suppressed` (rate limit).
    pub result: &'static str,
}

/// Handles to every series (cheap to clone).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Connections to IMDS answered with a 403 by the responder.
    pub blocked: Family<ReasonLabels, Counter>,
    /// Rule transactions.
    pub syncs: Family<SyncLabels, Counter>,
    /// How long one transaction took (nft run included).
    pub sync_seconds: Histogram,
    /// Addresses in the allowed set.
    pub allowed_ips: Gauge,
    /// The node's pods by verdict.
    pub pods: Family<VerdictLabels, Gauge>,
    /// Pods-file reads or watch events that could not be used.
    pub input_errors: Counter,
    /// Blocked-access Events.
    pub events: Family<EventLabels, Counter>,
}

impl Metrics {
    /// The metrics, registered in a fresh registry.
    pub fn new() -> (Self, Registry) {
        let mut registry = Registry::with_prefix("podid_node_guard");
        let m = Self {
            blocked: Family::default(),
            syncs: Family::default(),
            sync_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            allowed_ips: Gauge::default(),
            pods: Family::default(),
            input_errors: Counter::default(),
            events: Family::default(),
        };
        // No `_total` in counter names: the encoder adds it (and panics on a doubled one).
        registry.register(
            "blocked",
            "Connections to IMDS from pods not allowed, answered with 403 by the responder",
            m.blocked.clone(),
        );
        registry.register(
            "syncs",
            "nftables transactions applied, by kind and result",
            m.syncs.clone(),
        );
        registry.register(
            "sync_duration_seconds",
            "Time to apply one nftables transaction",
            m.sync_seconds.clone(),
        );
        registry.register(
            "allowed_ips",
            "Pod addresses in the allowed set",
            m.allowed_ips.clone(),
        );
        registry.register("pods", "This node's pods by verdict", m.pods.clone());
        registry.register(
            "input_errors",
            "Pod inputs (file reads, watch errors) that could not be used",
            m.input_errors.clone(),
        );
        registry.register(
            "events",
            "Blocked-access Events by result",
            m.events.clone(),
        );
        (m, registry)
    }

    /// Counts one transaction.
    pub fn sync(&self, kind: &'static str, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.syncs.get_or_create(&SyncLabels { kind, result }).inc();
        self.sync_seconds.observe(took.as_secs_f64());
    }
}
