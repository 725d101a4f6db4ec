//! The webhook's Prometheus metrics: requests by outcome, latency, identity cache size.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request: both values come from fixed lists (`kind()` methods), never from input.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `injected`, `skipped`, `denied`, `bad_request`, `timeout`.
    pub outcome: &'static str,
    /// Why: a skip, denial or error kind.
    pub reason: &'static str,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// As in [`RequestLabels`].
    pub outcome: &'static str,
}

/// Every metric the webhook exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OutcomeLabels, Histogram>,
    identity_objects: Gauge,
}

impl Metrics {
    /// Registers the webhook's metrics under `podid_webhook_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("podid_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        // Counters get their `_total` suffix from the encoder; registering it here would panic.
        registry.register(
            "admission_requests",
            "AdmissionReview requests by outcome and reason",
            requests.clone(),
        );
        let latency = Family::<OutcomeLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_05, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register(
            "admission_duration_seconds",
            "Time from request to response, by outcome",
            latency.clone(),
        );
        let identity_objects = Gauge::default();
        registry.register(
            "identity_objects",
            "AzureIdentity and AzureIdentityBinding objects in the cache",
            identity_objects.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            identity_objects,
        }
    }

    /// Counts one request and its latency.
    pub fn observe(&self, outcome: &'static str, reason: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { outcome, reason })
            .inc();
        self.latency
            .get_or_create(&OutcomeLabels { outcome })
            .observe(elapsed.as_secs_f64());
    }

    /// Records the identity cache's size.
    pub fn set_identity_objects(&self, n: usize) {
        self.identity_objects
            .set(i64::try_from(n).unwrap_or(i64::MAX));
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
