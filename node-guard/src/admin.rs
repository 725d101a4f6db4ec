//! The admin server: `/healthz`, `/readyz` (the first full sync applied), `/metrics` (OpenMetrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

/// What the admin routes read.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// Set once the rules match the first complete pod list.
    pub synced: Arc<AtomicBool>,
    /// The registry.
    pub registry: Arc<Registry>,
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
    if state.synced.load(Ordering::Acquire) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "rules not synced with the pod list yet",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &state.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}
