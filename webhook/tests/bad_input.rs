//! Keep-alive and malformed input: JSON errors, never a panic, never a dropped connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::client::{dribble, empty, full};
use support::{
    Conn, POD_FIXTURES, Reply, TestServer, admit, decode_patch, response_of, review_fixture,
    with_uid,
};

/// Asserts a 400 with a JSON body `{"error": kind, "message": …}`.
fn assert_bad_request(reply: &Reply, kind: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    reply.assert_json_content_type();
    let body = reply.json();
    assert_eq!(body["error"], kind, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Asserts `conn` still injects a good review.
async fn assert_still_serves(conn: &mut Conn, uid: &str) {
    assert!(!conn.is_closed(), "the server closed the connection");
    let response = admit(conn, &with_uid(review_fixture("deployment-pod"), uid)).await;
    decode_patch(&response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_share_one_keep_alive_connection() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    for i in 0..60 {
        let fixture = POD_FIXTURES[i % POD_FIXTURES.len()];
        let response = admit(
            &mut conn,
            &with_uid(review_fixture(fixture), &format!("ka-{i}")),
        )
        .await;
        decode_patch(&response);
    }
    assert!(!conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_json_get_400_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: [Bytes; 5] = [
        Bytes::from_static(b"this is not json"),
        Bytes::new(),
        Bytes::from_static(&[0xff, 0xfe, 0x00, 0x80]),
        Bytes::from_static(br#"{"apiVersion": "admission.k8s.io/v1", "#),
        Bytes::from(deep),
    ];

    for (i, body) in bodies.into_iter().enumerate() {
        let reply = conn.post("/mutate", body).await;
        assert_bad_request(&reply, "not_json");
        assert_still_serves(&mut conn, &format!("after-not-json-{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_is_not_an_admission_review_gets_400() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let mut pod_alone = review_fixture("deployment-pod")["request"]["object"].clone();
    pod_alone["metadata"]["uid"] = json!("not-a-request-uid");

    for (i, body) in [
        json!([1, 2, 3]),
        json!("AdmissionReview"),
        json!({}),
        pod_alone,
    ]
    .iter()
    .enumerate()
    {
        let reply = conn.post_json("/mutate", body).await;
        assert_bad_request(&reply, "not_a_review");
        assert_still_serves(&mut conn, &format!("after-not-a-review-{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_without_uid_gets_400() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    for (i, uid) in [None, Some(json!("")), Some(json!(42))]
        .into_iter()
        .enumerate()
    {
        let mut review = review_fixture("deployment-pod");
        match uid {
            Some(uid) => review["request"]["uid"] = uid,
            None => {
                review["request"].as_object_mut().unwrap().remove("uid");
            }
        }
        let reply = conn.post_json("/mutate", &review).await;
        assert_bad_request(&reply, "no_uid");
        assert_still_serves(&mut conn, &format!("after-no-uid-{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_with_a_uid_but_a_wrong_shape_is_denied_with_the_uid_echoed() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let mut v1beta1 = with_uid(review_fixture("deployment-pod"), "beta-1");
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut bad_request = with_uid(review_fixture("deployment-pod"), "bad-kind-1");
    bad_request["request"]["kind"] = json!("Pod");

    for review in [v1beta1, bad_request] {
        let response = admit(&mut conn, &review).await;
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 403, "{response}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("not an admission.k8s.io/v1 AdmissionReview"),
            "{message}"
        );
    }
    assert_still_serves(&mut conn, "after-wrong-shape").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_gets_400_body_too_large() {
    let server = TestServer::start_with(true, |cfg| cfg.max_body_bytes = 64 * 1024).await;
    let mut conn = server.connect().await;
    // A valid review padded past the limit with an annotation, as a huge pod would be.
    let mut review = with_uid(review_fixture("deployment-pod"), "too-large-1");
    review["request"]["object"]["metadata"]["annotations"]["padding"] =
        json!("x".repeat(100 * 1024));

    let reply = conn.post_json("/mutate", &review).await;

    assert_bad_request(&reply, "body_too_large");
    assert!(reply.json()["message"].as_str().unwrap().contains("65536"));
    // The rest of the body was not read, so the server may close this connection; a new
    // one is served.
    let mut fresh = server.connect().await;
    assert_still_serves(&mut fresh, "after-too-large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_pod_object_with_a_uid_gets_a_review_denying_it() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let mut review = with_uid(review_fixture("deployment-pod"), "a-deployment-1");
    review["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    review["request"]["resource"] =
        json!({"group": "apps", "version": "v1", "resource": "deployments"});
    review["request"]["object"] = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps"}, "spec": {"replicas": 2}});

    let response = admit(&mut conn, &review).await;

    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("Pods only"), "{message}");
    assert!(message.contains("Deployment"), "{message}");
    assert_still_serves(&mut conn, "after-non-pod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_are_allowed_without_a_patch() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    for operation in ["UPDATE", "DELETE", "CONNECT"] {
        let mut review = with_uid(review_fixture("deployment-pod"), operation);
        review["request"]["operation"] = json!(operation);
        if operation == "DELETE" {
            let object = review["request"]["object"].take();
            review["request"]["oldObject"] = object;
        }
        let response = admit(&mut conn, &review).await;
        assert_eq!(response["allowed"], true, "{operation}: {response}");
        assert!(response.get("patch").is_none(), "{operation}: {response}");
    }
    assert_still_serves(&mut conn, "after-update-delete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_gets_405_and_unknown_path_404_both_json() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    for (method, path, status, kind) in [
        (
            Method::GET,
            "/mutate",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/mutate",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/validate",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (Method::GET, "/", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/metrics", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let body = if method == Method::GET {
            empty()
        } else {
            full("{}")
        };
        let reply = conn.request(method.clone(), path, body).await.unwrap();
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        reply.assert_json_content_type();
        assert_eq!(reply.json()["error"], kind, "{method} {path}");
        assert_still_serves(&mut conn, &format!("after-{method}-{}", path.len())).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_gets_408_while_other_clients_are_served() {
    let timeout = Duration::from_millis(300);
    let server = TestServer::start_with(true, |cfg| cfg.request_timeout = timeout).await;
    let body = serde_json::to_vec(&review_fixture("deployment-pod")).unwrap();
    // Twenty pieces, one every 150 ms: the body takes ten times the timeout to arrive.
    let pieces: Vec<Bytes> = body
        .chunks(body.len() / 20 + 1)
        .map(Bytes::copy_from_slice)
        .collect();
    let mut slow = server.connect().await;
    let slow_request = tokio::spawn(async move {
        let body = dribble(pieces, Duration::from_millis(150));
        slow.request(Method::POST, "/mutate", body).await
    });

    let mut other = server.connect().await;
    let mut served = 0;
    while !slow_request.is_finished() {
        assert_still_serves(&mut other, &format!("meanwhile-{served}")).await;
        served += 1;
    }
    let reply = slow_request
        .await
        .unwrap()
        .expect("the slow client gets an answer");

    assert_eq!(
        reply.status,
        StatusCode::REQUEST_TIMEOUT,
        "{}",
        reply.text()
    );
    reply.assert_json_content_type();
    assert_eq!(reply.json()["error"], "timeout");
    assert!(served > 0);
    assert_still_serves(&mut other, "after-slow").await;
    let review: Value = review_fixture("job-pod");
    let reply = server.connect().await.post_json("/mutate", &review).await;
    decode_patch(&response_of(
        &reply,
        review["request"]["uid"].as_str().unwrap(),
    ));
}
