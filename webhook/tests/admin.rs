//! The plain-HTTP admin port: liveness, readiness that waits for the certificate, metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use serde_json::json;
use support::server::{SANS, write_pair};
use support::{TestServer, admit, decode_patch, review_fixture, with_uid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_the_certificate_files_appear_and_healthz_is_always_200() {
    let server = TestServer::start_with(false, |_| {}).await;
    let mut admin = server.connect_admin().await;

    let health = admin.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    health.assert_json_content_type();
    assert_eq!(health.json()["status"], "ok");
    // Polled a few times: the watcher has had time to look and still finds nothing.
    for _ in 0..5 {
        let ready = admin.get("/readyz").await;
        assert_eq!(
            ready.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            ready.text()
        );
        ready.assert_json_content_type();
        assert_eq!(ready.json()["certificateLoaded"], false);
        assert_eq!(ready.json()["identityCacheSynced"], true);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    assert!(
        support::Conn::tls(server.addr, server.client_config())
            .await
            .is_err()
    );

    write_pair(&server.cert_path, &server.key_path, &server.ca.leaf(&SANS));

    server.wait_ready().await;

    let ready = admin.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(ready.json()["certificateLoaded"], true);
    let mut conn = server.connect().await;
    decode_patch(&admit(&mut conn, &review_fixture("deployment-pod")).await);
    assert_eq!(admin.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_outcome_and_record_latency() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    for i in 0..3 {
        let review = with_uid(review_fixture("deployment-pod"), &format!("m-{i}"));
        decode_patch(&admit(&mut conn, &review).await);
    }
    let mut denied = with_uid(review_fixture("deployment-pod"), "m-denied");
    denied["request"]["object"]["metadata"]["annotations"]["podid.io/identity"] = json!("nope");
    assert_eq!(admit(&mut conn, &denied).await["allowed"], false);
    let mut update = with_uid(review_fixture("deployment-pod"), "m-update");
    update["request"]["operation"] = json!("UPDATE");
    assert_eq!(admit(&mut conn, &update).await["allowed"], true);
    assert_eq!(
        conn.post("/mutate", "not json").await.status,
        StatusCode::BAD_REQUEST
    );

    let reply = server.connect_admin().await.get("/metrics").await;

    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.headers.get(http::header::CONTENT_TYPE).unwrap();
    assert!(
        content_type
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = reply.text();
    for line in [
        r#"podid_webhook_admission_requests_total{outcome="injected",reason="injected"} 3"#,
        r#"podid_webhook_admission_requests_total{outcome="denied",reason="unresolved_identity"} 1"#,
        r#"podid_webhook_admission_requests_total{outcome="skipped",reason="not_create"} 1"#,
        r#"podid_webhook_admission_requests_total{outcome="bad_request",reason="not_json"} 1"#,
        r#"podid_webhook_admission_duration_seconds_count{outcome="injected"} 3"#,
        r#"podid_webhook_admission_duration_seconds_bucket{le="+Inf",outcome="injected"} 3"#,
        "# TYPE podid_webhook_admission_duration_seconds histogram",
        "# TYPE podid_webhook_admission_requests counter",
        "podid_webhook_identity_objects 3",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_port_answers_unknown_paths_with_404_json_and_serves_no_admission() {
    let server = TestServer::start().await;
    let mut admin = server.connect_admin().await;

    for path in ["/mutate", "/nope"] {
        let reply = admin.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        reply.assert_json_content_type();
        assert_eq!(reply.json()["error"], "not_found");
    }
    let reply = admin
        .post(
            "/mutate",
            serde_json::to_vec(&review_fixture("job-pod")).unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
