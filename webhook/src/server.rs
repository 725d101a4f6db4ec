//! The HTTP layer: `/mutate` around core's review, and the admin routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::{BodyExt, Limited};
use podid_certs::ReloadingCertResolver;
use podid_core::admission::{self, Reviewed};
use podid_core::inject::{Decision, InjectConfig};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::identities::IdentityStore;
use crate::metrics::Metrics;

/// What every request handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Identity objects.
    pub store: Arc<IdentityStore>,
    /// Injection settings, resolved at start-up.
    pub inject: Arc<InjectConfig>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The serving certificate (readiness).
    pub resolver: Arc<ReloadingCertResolver>,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Deadline for reading and answering one request.
    pub request_timeout: Duration,
    /// Set once shutdown has begun: /readyz fails while requests are still served.
    pub draining: Arc<AtomicBool>,
}

/// The router served over TLS.
pub fn mutate_router(state: AppState) -> Router {
    Router::new()
        .route(podid_core::names::WEBHOOK_PATH, any(mutate))
        .fallback(not_found)
        .with_state(state)
}

/// The router served on the plain-HTTP admin port.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { json_response(StatusCode::OK, json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    if request.method() != Method::POST {
        state
            .metrics
            .observe("bad_request", "method", started.elapsed());
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "POST an AdmissionReview to /mutate",
        );
    }
    let work = async {
        let body = read_body(request.into_body(), state.max_body_bytes).await?;
        Ok::<_, Response>(answer(&state, &body, started))
    };
    match tokio::time::timeout(state.request_timeout, work).await {
        Ok(Ok(response)) | Ok(Err(response)) => response,
        Err(_) => {
            warn!(timeout = ?state.request_timeout, "request not completed in time");
            state
                .metrics
                .observe("timeout", "timeout", started.elapsed());
            error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the request body did not arrive in time",
            )
        }
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(error(
                StatusCode::BAD_REQUEST,
                "body_too_large",
                &format!("request body exceeds {limit} bytes"),
            ))
        }
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            &format!("reading request body: {e}"),
        )),
    }
}

fn answer(state: &AppState, body: &[u8], started: Instant) -> Response {
    let index = state.store.snapshot();
    match admission::review(body, &index, &state.inject) {
        Reviewed::BadRequest(e) => {
            debug!(error = %e, "malformed admission request");
            state
                .metrics
                .observe("bad_request", e.kind(), started.elapsed());
            json_response(StatusCode::BAD_REQUEST, admission::error_body(&e))
        }
        Reviewed::Answer {
            review,
            decision,
            bypass,
        } => {
            let (outcome, reason) = describe(decision.as_ref(), bypass);
            log_decision(review.uid(), decision.as_ref(), outcome, reason);
            state.metrics.observe(outcome, reason, started.elapsed());
            json_bytes(StatusCode::OK, review.to_bytes())
        }
    }
}

fn describe(
    decision: Option<&Decision>,
    bypass: Option<&'static str>,
) -> (&'static str, &'static str) {
    match decision {
        Some(Decision::Skip { reason, .. }) => ("skipped", reason.kind()),
        Some(Decision::Inject { .. }) => ("injected", "injected"),
        Some(Decision::Deny { reason, .. }) => ("denied", reason.kind()),
        None if bypass == Some("not_create") => ("skipped", "not_create"),
        None => ("denied", bypass.unwrap_or("malformed")),
    }
}

fn log_decision(uid: &str, decision: Option<&Decision>, outcome: &str, reason: &str) {
    match decision {
        Some(Decision::Inject {
            status, warnings, ..
        }) => {
            let identities: Vec<&str> = status.identities.iter().map(|i| i.name.as_str()).collect();
            info!(%uid, ?identities, warnings = warnings.len(), "injected");
        }
        Some(Decision::Deny { message, .. }) => info!(%uid, %reason, %message, "denied"),
        _ => debug!(%uid, %outcome, %reason, "admitted unchanged"),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let synced = state.store.is_synced();
    let loaded = state.resolver.is_loaded();
    let draining = state.draining.load(Ordering::Acquire);
    let status = if synced && loaded && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not ready" },
        "identityCacheSynced": synced,
        "certificateLoaded": loaded,
        "shuttingDown": draining,
    });
    json_response(status, body)
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.set_identity_objects({
        let index = state.store.snapshot();
        index.identity_count() + index.binding_count()
    });
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such path; the webhook serves POST /mutate",
    )
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    json_response(status, json!({"error": kind, "message": message}))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    json_bytes(status, serde_json::to_vec(&body).unwrap_or_default())
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
