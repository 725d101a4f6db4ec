//! The IMDS listener: classifies each raw request, answers token requests for the pod's own identities, forwards or blocks the rest.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, Either, Limited};
use hyper::body::Incoming;
use podid_core::imds::{self, RequestHead, Route, TokenRequest};
use tracing::{debug, info};

use super::Shared;
use super::cache::{Key, Lookup};
use super::metrics;
use super::reply::{Body, ErrorReply, token_response};
use super::select::{self, Resolution};
use super::token::Token;

/// Longer request targets are refused: they only serve to grow the cache's keys.
const MAX_TARGET: usize = 8 * 1024;
/// Largest body forwarded to IMDS (scheduled-event acknowledgements are small).
const MAX_FORWARD_BODY: usize = 64 * 1024;

/// Answers one request on the IMDS listener.
pub async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    // The target as on the request line: absolute-form keeps its scheme and
    // authority here, so the rules refuse it as not origin-form.
    let target = request.uri().to_string();
    if target.len() > MAX_TARGET {
        shared.metrics.token_request(400);
        return ErrorReply::new(400, "invalid_request", "request target too long").into_response();
    }
    let metadata: Vec<&str> = request
        .headers()
        .get_all("metadata")
        .iter()
        .map(|v| v.to_str().unwrap_or("<not text>"))
        .collect();
    let head = RequestHead {
        method: request.method().as_str(),
        target: &target,
        metadata,
        forwarded_for: request.headers().contains_key("x-forwarded-for"),
    };
    let route = imds::classify(&head);
    match route {
        Ok(Route::Token(token)) => {
            let response = answer_token(&shared, &token).await;
            shared.metrics.token_request(response.status().as_u16());
            response
        }
        Ok(Route::Forward { target }) => forward(&shared, request, &target).await,
        Err(error) => {
            debug!(status = error.status, error = %error.error_description, "refused");
            shared.metrics.token_request(error.status);
            ErrorReply::from(error).into_response()
        }
    }
}

/// A token for the identity the request names, if the pod may use it.
async fn answer_token(shared: &Arc<Shared>, request: &TokenRequest) -> Response<Body> {
    let started = Instant::now();
    let resource = &request.resource;
    let (index, learned) = match choose(shared, request).await {
        Ok(chosen) => chosen,
        Err(reply) => {
            info!(%resource, status = reply.status, error = %reply.description, "token request refused");
            return reply.into_response();
        }
    };
    let Some(identity) = shared.configs.get(index) else {
        return ErrorReply::new(500, "internal_error", "identity index out of range")
            .into_response();
    };
    let (outcome, lookup) = match learned {
        Some(token) => (Ok(token), Lookup::Hit),
        None => {
            let key = Key {
                identity: index,
                resource: resource.clone(),
            };
            shared.cache.get(&key, request.bypass_cache).await
        }
    };
    shared.metrics.cache_lookup(lookup.kind());
    let response = match &outcome {
        Ok(token) => token_response(token, resource, &identity.client_id),
        Err(error) => ErrorReply::upstream(error, &identity.name).into_response(),
    };
    let (status, ms) = (response.status().as_u16(), started.elapsed().as_millis());
    match lookup {
        Lookup::Hit if status == 200 => {
            debug!(identity = %identity.name, %resource, status, ms, "token served from cache")
        }
        _ => {
            info!(identity = %identity.name, %resource, status, ms, lookup = lookup.kind(), "token request")
        }
    }
    response
}

/// The index of the identity `request` names, and the token already fetched
/// for it when finding it took one (object ids are learned from tokens).
async fn choose(
    shared: &Arc<Shared>,
    request: &TokenRequest,
) -> Result<(usize, Option<Arc<Token>>), ErrorReply> {
    let configs = &shared.configs;
    let upstream = shared.cache.fetcher();
    let candidates = match select::resolve(configs, request.selector.as_ref(), |i| {
        upstream.object_id(i)
    }) {
        Resolution::Identity(i) => return Ok((i, None)),
        Resolution::Unbound(why) => return Err(ErrorReply::new(403, "forbidden", why)),
        Resolution::Learn(candidates) => candidates,
    };
    let Some(imds::Selector::ObjectId(wanted)) = &request.selector else {
        return Err(ErrorReply::new(
            500,
            "internal_error",
            "object id resolution without an object id",
        ));
    };
    // Only bound identities are ever fetched: an object id outside the pod's
    // list costs no upstream call for that identity.
    let mut first_failure = None;
    for index in candidates {
        let key = Key {
            identity: index,
            resource: request.resource.clone(),
        };
        let (outcome, lookup) = shared.cache.get(&key, false).await;
        shared.metrics.cache_lookup(lookup.kind());
        match outcome {
            Ok(token)
                if token
                    .object_id
                    .as_deref()
                    .is_some_and(|o| o.eq_ignore_ascii_case(wanted)) =>
            {
                return Ok((index, Some(token)));
            }
            Ok(_) => {}
            Err(error) => {
                first_failure
                    .get_or_insert_with(|| ErrorReply::upstream(&error, &configs[index].name));
            }
        }
    }
    // While a bound identity's object id cannot be learned, the request may be for it.
    Err(first_failure.unwrap_or_else(|| {
        ErrorReply::new(403, "forbidden", select::not_bound("object_id", wanted))
    }))
}

/// Forwards another IMDS path, streaming the answer back; or refuses it when blocked.
async fn forward(shared: &Arc<Shared>, request: Request<Incoming>, target: &str) -> Response<Body> {
    let path = target.split('?').next().unwrap_or(target).to_owned();
    if shared.block_other_paths {
        debug!(%path, "blocked");
        let why = format!("{path:?} is blocked: this pod may use only the token endpoint");
        return ErrorReply::new(403, "forbidden", why).into_response();
    }
    let (parts, body) = request.into_parts();
    let body = match read_body(body, &parts.method).await {
        Ok(body) => body,
        Err(reply) => return reply.into_response(),
    };
    let started = Instant::now();
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    let call = shared
        .imds
        .forward(parts.method.clone(), target, content_type, body);
    let outcome = tokio::time::timeout(shared.forward_timeout, call).await;
    let elapsed = started.elapsed();
    let upstream = match outcome {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => {
            shared
                .metrics
                .upstream("imds_forward", error.class(), elapsed);
            return ErrorReply::new(502, "bad_gateway", error.to_string()).into_response();
        }
        Err(_) => {
            shared.metrics.upstream("imds_forward", "timeout", elapsed);
            return ErrorReply::new(504, "gateway_timeout", "IMDS did not answer in time")
                .into_response();
        }
    };
    let status = upstream.status();
    shared
        .metrics
        .upstream("imds_forward", metrics::class(status.as_u16()), elapsed);
    debug!(%path, status = status.as_u16(), ms = elapsed.as_millis(), "forwarded");
    let (upstream_parts, upstream_body) = upstream.into_parts();
    let mut response = Response::new(Either::Right(upstream_body));
    *response.status_mut() = status;
    for name in [
        header::CONTENT_TYPE,
        header::RETRY_AFTER,
        header::ETAG,
        header::CACHE_CONTROL,
    ] {
        if let Some(value) = upstream_parts.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

async fn read_body(body: Incoming, method: &Method) -> Result<Bytes, ErrorReply> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(Bytes::new());
    }
    match Limited::new(body, MAX_FORWARD_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(ErrorReply::new(
            413,
            "invalid_request",
            "request body too large or unreadable",
        )),
    }
}
