//! POST /mutate over real TLS, as the API server calls it, with realistic AdmissionReviews.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use rustls::{HandshakeKind, ProtocolVersion};
use serde_json::{Value, json};
use support::{
    KEYVAULT_READER_CLIENT_ID, POD_FIXTURES, STORAGE_READER_CLIENT_ID, TestServer, admit, apply,
    assert_injected_native, assert_preserved, container, container_names, decode_patch, env_value,
    review_fixture, review_of, with_uid,
};

/// The client id each fixture's default identity resolves to.
fn default_client_id(fixture: &str) -> &'static str {
    match fixture {
        "statefulset-pod" | "future-fields-pod" => KEYVAULT_READER_CLIENT_ID,
        _ => STORAGE_READER_CLIENT_ID,
    }
}

/// Sends `fixture`, checks the response, and returns (object as sent, object patched).
async fn inject(conn: &mut support::Conn, fixture: &str) -> (Value, Value) {
    let review = review_fixture(fixture);
    let response = admit(conn, &review).await;
    let patch = decode_patch(&response);
    let original = review["request"]["object"].clone();
    let patched = apply(&original, &patch);
    (original, patched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_like_the_api_servers_gets_http11_over_tls12_or_later() {
    let server = TestServer::start().await;

    let conn = server.connect().await;

    let tls = conn.tls.as_ref().expect("TLS connection");
    assert_eq!(tls.alpn.as_deref(), Some(b"http/1.1".as_slice()));
    assert!(
        matches!(
            tls.version,
            ProtocolVersion::TLSv1_2 | ProtocolVersion::TLSv1_3
        ),
        "{:?}",
        tls.version
    );
    let summary = podid_certs::summarize(&tls.leaf).expect("X.509 leaf");
    for san in support::server::SANS {
        assert!(summary.dns_names.iter().any(|n| n == san), "{san} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_not_resumed_so_every_handshake_presents_the_current_certificate() {
    let server = TestServer::start().await;
    // One client config, so a client that resumes would offer its ticket or session id.
    let config = server.client_config();

    for _ in 0..3 {
        let mut conn = support::Conn::tls(server.addr, config.clone())
            .await
            .unwrap();
        admit(&mut conn, &review_fixture("job-pod")).await;
        assert_eq!(conn.tls.as_ref().unwrap().kind, HandshakeKind::Full);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realistic_pods_are_injected_with_add_only_patches_that_keep_everything_else() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    for fixture in POD_FIXTURES {
        let (original, patched) = inject(&mut conn, fixture).await;

        assert_injected_native(&patched, default_client_id(fixture));
        assert_preserved(&original, &patched);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvocation_with_the_patched_pod_is_allowed_without_a_patch() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    for fixture in POD_FIXTURES {
        let (_, patched) = inject(&mut conn, fixture).await;
        let mut again = with_uid(review_fixture(fixture), &format!("again-{fixture}"));
        again["request"]["object"] = patched;

        let response = admit(&mut conn, &again).await;

        assert_eq!(response["allowed"], true, "{fixture}: {response}");
        assert!(response.get("patch").is_none(), "{fixture}: {response}");
        assert!(response.get("patchType").is_none(), "{fixture}: {response}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_and_managed_fields_survive_byte_for_byte() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    let (original, patched) = inject(&mut conn, "future-fields-pod").await;

    for pointer in [
        "/metadata/managedFields",
        "/metadata/futureMetadataField",
        "/metadata/ownerReferences",
        "/spec/containers/0/futureContainerField",
        "/spec/containers/0/resizePolicy",
        "/spec/hostUsers",
        "/spec/resourceClaims",
        "/spec/futurePodField",
        "/futureTopLevelField",
        "/status",
    ] {
        let before = original.pointer(pointer).expect("fixture has the field");
        assert_eq!(patched.pointer(pointer), Some(before), "{pointer}");
    }
    // Serialized, the unknown parts are the same bytes too (serde_json keeps key order).
    let bytes = |v: &Value, p: &str| serde_json::to_string(v.pointer(p).unwrap()).unwrap();
    assert_eq!(
        bytes(&patched, "/spec/futurePodField"),
        bytes(&original, "/spec/futurePodField")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_goes_before_a_pods_own_native_sidecar_and_init_containers() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    let (_, patched) = inject(&mut conn, "native-sidecar-pod").await;

    assert_eq!(
        container_names(&patched, "initContainers"),
        ["podid-init", "podid-proxy", "log-shipper", "migrate"]
    );
    let shipper = container(&patched, "initContainers", "log-shipper");
    assert_eq!(shipper["restartPolicy"], "Always");
    // Init containers get the identity too: with native sidecars they can fetch tokens.
    assert_eq!(
        env_value(shipper, "AZURE_CLIENT_ID"),
        Some(STORAGE_READER_CLIENT_ID)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_pod_bound_through_aadpodidbinding_gets_the_bound_identity() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;

    let (_, patched) = inject(&mut conn, "job-pod").await;

    let status = patched["metadata"]["annotations"]["podid.io/status"]
        .as_str()
        .unwrap();
    let status: Value = serde_json::from_str(status).unwrap();
    assert_eq!(status["identities"][0]["name"], "storage-reader");
    assert_eq!(
        status["identities"][0]["clientID"],
        STORAGE_READER_CLIENT_ID
    );
    assert_eq!(
        patched["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
        "report"
    );
    assert_eq!(patched["spec"]["restartPolicy"], "Never");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_init_with_net_admin_is_admitted_with_a_warning() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let review = review_fixture("istio-pod");

    let response = admit(&mut conn, &review).await;

    let warnings = response["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| {
            let w = w.as_str().unwrap_or_default();
            w.contains("\"istio-init\"") && w.contains("NET_ADMIN") && w.contains("apps/api-")
        }),
        "{warnings:?}"
    );
    let patched = apply(&review["request"]["object"], &decode_patch(&response));
    assert_eq!(
        container_names(&patched, "containers"),
        ["api", "istio-proxy"]
    );
    // Istio's own default-container choice stands.
    assert_eq!(
        patched["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
        "api"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_naming_an_unknown_identity_is_denied_with_403_naming_pod_and_cause() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let mut object = review_fixture("deployment-pod")["request"]["object"].clone();
    object["metadata"]["annotations"]["podid.io/identity"] = json!("storage-reader,x");
    let review = review_of(object, "c0ffee00-0000-4000-8000-000000000001");

    let response = admit(&mut conn, &review).await;

    assert_eq!(response["allowed"], false, "{response}");
    assert!(response.get("patch").is_none(), "{response}");
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"pod "apps/web-7d4b9c8f6d-""#),
        "{message}"
    );
    assert!(
        message.contains(r#"AzureIdentity "x" not found in namespace "apps""#),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_of_another_namespace_is_not_found() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let mut review = review_fixture("statefulset-pod");
    review["request"]["namespace"] = json!("other");
    review["request"]["object"]["metadata"]["namespace"] = json!("other");

    let response = admit(&mut conn, &review).await;

    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains(r#"pod "other/db-0""#), "{message}");
    assert!(
        message.contains(r#"AzureIdentity "keyvault-reader" not found in namespace "other""#),
        "{message}"
    );
}
