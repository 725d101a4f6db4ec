//! The admin server: `/healthz`, `/readyz` (the cluster index is synced), `/metrics` (OpenMetrics), and the kube glue's own metrics.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;

use crate::kube::ClusterIndex;
use crate::metrics::Metrics;

/// The kube glue's metrics.
#[derive(Clone, Debug, Default)]
pub struct GlueMetrics {
    /// 1 while this replica leads.
    pub leader: Gauge,
    /// Desired-state passes submitted to the executor.
    pub passes: Counter,
    /// Pods in the last pass (opted-in namespace, scheduled, not finished).
    pub pods: Gauge,
}

impl GlueMetrics {
    /// Registers these metrics in `metrics`' registry.
    pub fn register(metrics: &mut Metrics) -> Self {
        let glue = Self::default();
        let registry = metrics.registry_mut();
        registry.register(
            "leader",
            "1 while this replica leads (holds the Lease)",
            glue.leader.clone(),
        );
        registry.register(
            "passes",
            "Desired-state passes handed to the executor",
            glue.passes.clone(),
        );
        registry.register("pods", "Pods in scope in the last pass", glue.pods.clone());
        glue
    }
}

/// What the admin routes read.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// Readiness: synced once every watched kind was listed.
    pub index: Arc<ClusterIndex>,
    /// The registry.
    pub metrics: Arc<Metrics>,
}

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if state.index.is_synced() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster index not synced yet",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.encode(),
    )
        .into_response()
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(state: &AdminState, path: &str) -> (StatusCode, String) {
        let response = router(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_waits_for_the_index_and_metrics_include_the_glue() {
        let mut metrics = Metrics::new();
        let glue = GlueMetrics::register(&mut metrics);
        glue.leader.set(1);
        let state = AdminState {
            index: Arc::new(ClusterIndex::new()),
            metrics: Arc::new(metrics),
        };
        assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(&state, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (status, text) = get(&state, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("podid_controller_leader 1"), "{text}");
        assert!(text.contains("podid_controller_passes_total 0"), "{text}");
    }
}
