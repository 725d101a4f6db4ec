//! The controller's Prometheus metrics: ARM calls by operation and status, throttles, operations in flight, assignment latency, pending targets.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an ARM call: both from fixed lists, never from input.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `get`, `patch` or `poll`.
    pub operation: &'static str,
    /// The HTTP status (`200`, `429`, …), or `error` when no answer came.
    pub status: String,
}

/// Labels of a throttle.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// `get`, `patch` or `poll`.
    pub operation: &'static str,
}

/// Labels of an executor report.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReportLabels {
    /// `applied`, `identity_failed` or `target_failed`.
    pub kind: &'static str,
}

/// The ARM client's metrics (cheap to clone: handles to shared series).
#[derive(Clone, Debug, Default)]
pub struct ArmMetrics {
    calls: Family<CallLabels, Counter>,
    throttles: Family<OperationLabels, Counter>,
    in_flight: Gauge,
}

impl ArmMetrics {
    /// Counts one ARM call and its answer (`None`: no answer came).
    pub fn call(&self, operation: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.calls
            .get_or_create(&CallLabels { operation, status })
            .inc();
    }

    /// Counts one 429.
    pub fn throttled(&self, operation: &'static str) {
        self.throttles
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// Marks a long-running operation as running until the guard drops.
    pub fn operation_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Operations running now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }
}

/// A running long-running operation; counted in `arm_operations_in_flight` until dropped.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The executor's metrics (cheap to clone).
#[derive(Clone, Debug)]
pub struct ExecMetrics {
    assignment: Histogram,
    pending_targets: Gauge,
    reports: Family<ReportLabels, Counter>,
}

impl Default for ExecMetrics {
    fn default() -> Self {
        Self {
            // 0.25 s … ~2 h: a VM takes 10–20 s, a scale set 35–60 s, throttling adds minutes.
            assignment: Histogram::new(exponential_buckets(0.25, 2.0, 15)),
            pending_targets: Gauge::default(),
            reports: Family::default(),
        }
    }
}

impl ExecMetrics {
    /// Records how long a pod waited for an identity on its node.
    pub fn assigned_after(&self, waited: Duration) {
        self.assignment.observe(waited.as_secs_f64());
    }

    /// Sets how many targets have work queued or running.
    pub fn set_pending_targets(&self, n: usize) {
        self.pending_targets
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one report of `kind`.
    pub fn report(&self, kind: &'static str) {
        self.reports.get_or_create(&ReportLabels { kind }).inc();
    }
}

/// Every metric of the ARM client and the executor, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Handles for the ARM client.
    pub arm: ArmMetrics,
    /// Handles for the executor.
    pub exec: ExecMetrics,
}

impl Metrics {
    /// Registers the metrics under `podid_controller_`. Other parts of the
    /// controller add theirs through [`Metrics::registry_mut`].
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("podid_controller");
        let arm = ArmMetrics::default();
        let exec = ExecMetrics::default();
        // Counters get their `_total` suffix from the encoder; registering it here would panic.
        registry.register(
            "arm_requests",
            "ARM requests by operation (get, patch, poll) and HTTP status",
            arm.calls.clone(),
        );
        registry.register(
            "arm_throttled",
            "ARM answers 429 (throttled), by operation",
            arm.throttles.clone(),
        );
        registry.register(
            "arm_operations_in_flight",
            "ARM long-running operations the controller is following",
            arm.in_flight.clone(),
        );
        registry.register(
            "identity_assignment_seconds",
            "Time from a pod needing an identity on its node (first seen) to the identity assigned there",
            exec.assignment.clone(),
        );
        registry.register(
            "pending_targets",
            "VMs and scale sets with changes queued or being applied",
            exec.pending_targets.clone(),
        );
        registry.register(
            "executor_reports",
            "Executor reports by kind (applied, identity_failed, target_failed)",
            exec.reports.clone(),
        );
        Self {
            registry,
            arm,
            exec,
        }
    }

    /// The registry, for the rest of the controller's metrics.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_series_without_doubled_suffixes() {
        let m = Metrics::new();
        m.arm.call("patch", Some(200));
        m.arm.call("get", None);
        m.arm.throttled("patch");
        let guard = m.arm.operation_started();
        m.exec.assigned_after(Duration::from_secs(3));
        m.exec.set_pending_targets(2);
        m.exec.report("applied");
        let text = m.encode();
        for series in [
            "podid_controller_arm_requests_total{operation=\"patch\",status=\"200\"} 1",
            "podid_controller_arm_requests_total{operation=\"get\",status=\"error\"} 1",
            "podid_controller_arm_throttled_total{operation=\"patch\"} 1",
            "podid_controller_arm_operations_in_flight 1",
            "podid_controller_identity_assignment_seconds_count 1",
            "podid_controller_pending_targets 2",
            "podid_controller_executor_reports_total{kind=\"applied\"} 1",
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
        drop(guard);
        assert_eq!(m.arm.in_flight(), 0);
    }
}
