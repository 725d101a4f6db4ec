//! The responder: blocked TCP to IMDS lands here and gets an IMDS-shaped 403 naming the pod, so SDKs fail fast and say why.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use podid_core::guard::{AllowedSet, Verdict};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::events::Blocked;
use crate::metrics::{Metrics, ReasonLabels};
use crate::sync::SharedSet;

/// What the responder reads and where it reports.
#[derive(Clone, Debug)]
pub struct ResponderState {
    /// The allowed set and the owners of the node's pod addresses.
    pub shared: SharedSet,
    /// Counters.
    pub metrics: Metrics,
    /// Blocked attempts of known pods, for Events (dropped when full: the answer never waits).
    pub events: mpsc::Sender<Blocked>,
}

/// Every path and method: the same 403.
pub fn router(state: ResponderState) -> Router {
    Router::new().fallback(answer).with_state(state)
}

/// The `error_description` for a connection from `source`, and the metric reason.
pub fn describe(set: &AllowedSet, source: IpAddr) -> (String, &'static str, Option<Blocked>) {
    let owner = match source {
        IpAddr::V4(ip) => set.owners.get(&ip),
        IpAddr::V6(_) => None,
    };
    let Some(pod) = owner else {
        let text = format!(
            "IMDS access blocked by podid-node-guard: {source} is not the address of a pod on this node that may use IMDS"
        );
        return (text, "unknown_pod", None);
    };
    let (cause, reason) = match pod.verdict {
        Verdict::Block(reason) => (reason.to_string(), reason.kind()),
        // Allowed after the connection was made: the next one goes through.
        Verdict::Allow(_) => (
            "was not allowed yet when it connected; retry".to_owned(),
            "allowed_late",
        ),
        Verdict::HostNetwork | Verdict::Finished => ("is not running".to_owned(), "unknown_pod"),
    };
    let text = format!(
        "IMDS access blocked by podid-node-guard: pod {pod} {cause}. Pods get Azure tokens through podid: \
         label the namespace podid.io/inject=enabled and recreate the pod, or ask the cluster admin for an exception"
    );
    let blocked = Blocked {
        pod: pod.clone(),
        note: text.clone(),
    };
    (text, reason, Some(blocked))
}

async fn answer(
    State(state): State<ResponderState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let (description, reason, blocked) = {
        let set = state.shared.read().unwrap_or_else(|p| p.into_inner());
        describe(&set, peer.ip())
    };
    state
        .metrics
        .blocked
        .get_or_create(&ReasonLabels { reason })
        .inc();
    if let Some(blocked) = blocked {
        let _ = state.events.try_send(blocked);
    }
    let body = json!({"error": "forbidden", "error_description": description});
    (
        StatusCode::FORBIDDEN,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CONNECTION, "close"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Serves the responder on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: ResponderState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Without TCP_NODELAY a small response waits for the peer's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
