//! The proxy's Prometheus metrics: token requests by outcome, cache lookups, upstream calls and their latency.
//!
//! Every label value comes from a fixed list (`kind()` / `class()` methods),
//! never from a request, so a pod cannot grow the series set.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    kind: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    result: &'static str,
}

/// Every metric of the proxy.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    token_requests: Family<OutcomeLabels, Counter>,
    cache_lookups: Family<LookupLabels, Counter>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_duration: Family<KindLabels, Histogram>,
}

impl Metrics {
    /// Registers the proxy's metrics under `podid_proxy_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("podid_proxy");
        let token_requests = Family::default();
        // Counters get their `_total` suffix from the encoder; registering it here would panic.
        registry.register(
            "token_requests",
            "Token requests by outcome (ok, bad_request, forbidden, throttled, unavailable, bad_gateway, timeout, upstream_rejected, error)",
            token_requests.clone(),
        );
        let cache_lookups = Family::default();
        registry.register(
            "token_cache_lookups",
            "Token cache lookups by result (hit, coalesced, miss)",
            cache_lookups.clone(),
        );
        let upstream_requests = Family::default();
        registry.register(
            "upstream_requests",
            "Calls to IMDS and Azure AD by kind (imds_token, aad_token, imds_forward) and status class",
            upstream_requests.clone(),
        );
        let upstream_duration = Family::<KindLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(doubling_buckets(0.001, 15))) as fn() -> Histogram,
        );
        registry.register(
            "upstream_duration_seconds",
            "Latency of upstream calls by kind",
            upstream_duration.clone(),
        );
        Self {
            registry,
            token_requests,
            cache_lookups,
            upstream_requests,
            upstream_duration,
        }
    }

    /// Counts a token request answered with `status`.
    pub fn token_request(&self, status: u16) {
        let outcome = outcome(status);
        self.token_requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a cache lookup.
    pub fn cache_lookup(&self, result: &'static str) {
        self.cache_lookups
            .get_or_create(&LookupLabels { result })
            .inc();
    }

    /// Counts one upstream call and its latency.
    pub fn upstream(&self, kind: &'static str, class: &'static str, elapsed: Duration) {
        self.upstream_requests
            .get_or_create(&UpstreamLabels { kind, class })
            .inc();
        self.upstream_duration
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
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

/// The outcome label of a token request's status.
/// `count` bucket bounds from `first`, each twice the last: prometheus_client's
/// `exponential_buckets(first, 2.0, count)` without `powf`, which LLVM turns
/// into a call to libm's `exp2`, and libm, mapped for that alone, costs the
/// proxy ~0.35 MiB of resident file pages (docs/BENCHMARKS.md).
fn doubling_buckets(first: f64, count: usize) -> impl Iterator<Item = f64> {
    std::iter::successors(Some(first), |bound| Some(bound * 2.0)).take(count)
}

fn outcome(status: u16) -> &'static str {
    match status {
        200 => "ok",
        400 | 404 | 405 => "bad_request",
        403 => "forbidden",
        429 => "throttled",
        503 => "unavailable",
        502 => "bad_gateway",
        504 => "timeout",
        401..=499 => "upstream_rejected",
        _ => "error",
    }
}

/// The status-class label of an HTTP status.
pub fn class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_buckets_match_prometheus_clients_exponential_buckets() {
        use prometheus_client::metrics::histogram::exponential_buckets;
        let ours: Vec<f64> = doubling_buckets(0.001, 15).collect();
        let theirs: Vec<f64> = exponential_buckets(0.001, 2.0, 15).collect();
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= b * 1e-12, "{ours:?} vs {theirs:?}");
        }
    }

    #[test]
    fn the_exposition_names_every_family() {
        let m = Metrics::new();
        m.token_request(200);
        m.token_request(403);
        m.cache_lookup("hit");
        m.upstream("imds_token", "2xx", Duration::from_millis(3));
        let text = m.encode();
        for needle in [
            r#"podid_proxy_token_requests_total{outcome="ok"} 1"#,
            r#"podid_proxy_token_requests_total{outcome="forbidden"} 1"#,
            r#"podid_proxy_token_cache_lookups_total{result="hit"} 1"#,
            r#"podid_proxy_upstream_requests_total{kind="imds_token",class="2xx"} 1"#,
            r#"podid_proxy_upstream_duration_seconds_count{kind="imds_token"} 1"#,
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
    }
}
