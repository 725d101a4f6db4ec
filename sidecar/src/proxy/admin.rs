//! The admin listener (`/live`, `/ready`, `/metrics`) and the warm-up that makes the proxy ready.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use tracing::{debug, info, warn};

use super::Shared;
use super::cache::Key;
use super::reply::{Body, ErrorReply, json_response};

/// The resource `/ready` gets a token for: what most pods want first, and
/// what every identity can get a token for.
pub const READY_RESOURCE: &str = "https://management.azure.com/";

/// Pause between warm-up attempts, growing to [`MAX_PAUSE`]; each attempt is
/// a full fetch with its own retries.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Answers one request on the admin listener.
pub async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    match request.uri().path() {
        "/live" => json_response(200, r#"{"status":"live"}"#.to_owned()),
        "/ready" if shared.draining.load(Ordering::Acquire) => {
            ErrorReply::new(503, "shutting_down", "the proxy is shutting down").into_response()
        }
        "/ready" if shared.ready.load(Ordering::Acquire) => {
            json_response(200, r#"{"status":"ready"}"#.to_owned())
        }
        "/ready" => ErrorReply::new(
            503,
            "not_ready",
            "waiting for a token for the pod's default identity",
        )
        .into_response(),
        "/metrics" => {
            let mut response = json_response(200, shared.metrics.encode());
            let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        path => ErrorReply::new(
            404,
            "not_found",
            format!("{path:?}: try /live, /ready or /metrics"),
        )
        .into_response(),
    }
}

/// Makes the proxy ready: once a token for the default identity was obtained
/// (which also caches it and learns its object id), at once for a pod
/// without identities, and after `timeout` regardless, so that a pod whose
/// identity never arrives still starts (with the failure logged).
pub async fn warm_up(shared: Arc<Shared>, timeout: Duration) {
    let Some(default) = shared.configs.first() else {
        info!("no identity is bound to this pod; ready (every token request gets 403)");
        shared.ready.store(true, Ordering::Release);
        return;
    };
    let started = Instant::now();
    let key = Key {
        identity: 0,
        resource: READY_RESOURCE.to_owned(),
    };
    let mut last_error = None;
    let attempts = async {
        let mut pause = FIRST_PAUSE;
        loop {
            match shared.cache.get(&key, false).await.0 {
                Ok(_) => return,
                Err(error) => {
                    debug!(identity = %default.name, %error, "warm-up: no token yet");
                    last_error = Some(error);
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    };
    let ms = |s: Instant| s.elapsed().as_millis();
    match tokio::time::timeout(timeout, attempts).await {
        Ok(()) => {
            info!(identity = %default.name, ms = ms(started), "default identity's token obtained; ready")
        }
        Err(_) => {
            let error = last_error.map_or_else(
                || "no answer from upstream yet".to_owned(),
                |e| e.to_string(),
            );
            warn!(identity = %default.name, ?timeout, %error, "no token for the default identity within the ready timeout; reporting ready anyway");
        }
    }
    shared.ready.store(true, Ordering::Release);
}
