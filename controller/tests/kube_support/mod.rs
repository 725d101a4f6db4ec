//! A mock Kubernetes API server for the kube glue's tests (tower-test): take each request, check it, answer it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

/// The server side of the mock.
pub type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// A client talking to a fresh mock, and the mock's handle.
pub fn client() -> (kube::Client, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// One request as the test sees it.
#[derive(Debug)]
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path without query.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// The JSON body (`Null` if empty or not JSON).
    pub body: Value,
}

impl Seen {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a watch request.
    pub fn is_watch(&self) -> bool {
        self.param("watch") == Some("true")
    }
}

/// Takes the next request (failing after a while: a test must not hang).
pub async fn next(handle: &mut ApiHandle) -> (Seen, SendResponse<Response<Body>>) {
    let next = tokio::time::timeout(std::time::Duration::from_secs(30), handle.next_request());
    let (request, send) = next.await.expect("a request in time").expect("a request");
    let (parts, body) = request.into_parts();
    let query = parts
        .uri
        .query()
        .map(form_urlencoded_pairs)
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let seen = Seen {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        content_type,
        body,
    };
    (seen, send)
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// Answers `send` with `status` and the JSON `body`.
pub fn reply(send: SendResponse<Response<Body>>, status: u16, body: &Value) {
    let response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    send.send_response(response);
}

/// Answers with a body of newline-separated JSON lines (a watch), which then ends.
pub fn reply_lines(send: SendResponse<Response<Body>>, lines: &[Value]) {
    let mut text = Vec::new();
    for line in lines {
        text.extend(serde_json::to_vec(line).unwrap());
        text.push(b'\n');
    }
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(text))
        .unwrap();
    send.send_response(response);
}

/// A Kubernetes `Status` error.
pub fn status(code: u16, reason: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": format!("canned {reason}"), "reason": reason, "code": code,
    })
}

/// Takes the next request, asserts method and path, answers; returns what was seen.
pub async fn expect(
    handle: &mut ApiHandle,
    method: Method,
    path: &str,
    code: u16,
    body: Value,
) -> Seen {
    let (seen, send) = next(handle).await;
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&method, path),
        "{seen:#?}"
    );
    reply(send, code, &body);
    seen
}
