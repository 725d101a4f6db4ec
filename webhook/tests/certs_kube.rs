//! The self-managed certificate's Kubernetes calls, against a mock API server (tower-test).
//!
//! Each test asserts the exact requests `KubeCluster` sends — method, path,
//! resourceVersion precondition, patch body — and answers with canned objects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use base64::Engine as _;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use podid_certs::{
    CertManager, Cluster, ClusterError, Plan, Published, ReloadingCertResolver, RotationPolicy,
    SecretData, ServiceName, SystemClock,
};
use podid_webhook::certs_self::KubeCluster;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

const SECRETS: &str = "/api/v1/namespaces/podid-system/secrets";
const SECRET: &str = "/api/v1/namespaces/podid-system/secrets/podid-webhook-tls";
const MWC: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podid-webhook";

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn cluster() -> (KubeCluster, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let cluster = KubeCluster::new(
        client,
        "podid-system",
        "podid-webhook-tls".into(),
        "podid-webhook".into(),
    );
    (cluster, handle)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn data() -> SecretData {
    SecretData {
        tls_crt: b"leaf".to_vec(),
        tls_key: b"leaf key".to_vec(),
        ca_crt: b"ca".to_vec(),
        ca_key: b"ca key".to_vec(),
        ca_bundle: b"bundle".to_vec(),
    }
}

fn secret_json(rv: &str, data: &SecretData) -> Value {
    let data: serde_json::Map<String, Value> = data
        .to_map()
        .into_iter()
        .map(|(k, v)| (k, json!(b64(&v))))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "podid-webhook-tls", "namespace": "podid-system", "resourceVersion": rv},
        "data": data,
    })
}

fn status(code: u16, reason: &str) -> (StatusCode, Value) {
    let body = json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": format!("canned {reason}"), "reason": reason, "code": code,
    });
    (StatusCode::from_u16(code).unwrap(), body)
}

/// Takes the next request, checks method and path, answers, and returns
/// the request's content type and JSON body (`Null` if empty).
async fn answer(
    handle: &mut ApiHandle,
    method: Method,
    path: &str,
    (code, reply): (StatusCode, Value),
) -> (Option<String>, Value) {
    let (request, send) = handle.next_request().await.expect("a request");
    assert_eq!((request.method(), request.uri().path()), (&method, path));
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let response = Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
        .unwrap();
    send.send_response(response);
    (content_type, body)
}

#[tokio::test]
async fn get_reads_the_secret_by_name_and_an_absent_secret_is_none() {
    let (cluster, mut api) = cluster();
    let (got, _) = tokio::join!(
        cluster.get_secret(),
        answer(
            &mut api,
            Method::GET,
            SECRET,
            (StatusCode::OK, secret_json("42", &data()))
        )
    );
    let stored = got.unwrap().unwrap();
    assert_eq!(
        (stored.data, stored.resource_version.as_str()),
        (data(), "42")
    );

    let (got, _) = tokio::join!(
        cluster.get_secret(),
        answer(&mut api, Method::GET, SECRET, status(404, "NotFound"))
    );
    assert!(got.unwrap().is_none());
}

#[tokio::test]
async fn create_posts_a_tls_secret_and_an_existing_one_is_a_conflict() {
    let (cluster, mut api) = cluster();
    let data = data();
    let (created, (_, body)) = tokio::join!(
        cluster.create_secret(&data),
        answer(
            &mut api,
            Method::POST,
            SECRETS,
            (StatusCode::CREATED, secret_json("7", &data))
        )
    );
    assert_eq!(created.unwrap().resource_version, "7");
    assert_eq!(body["type"], "kubernetes.io/tls");
    assert_eq!(body["metadata"]["name"], "podid-webhook-tls");
    assert!(body["metadata"].get("resourceVersion").is_none(), "{body}");
    assert_eq!(
        body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "podid-webhook"
    );
    assert_eq!(body["data"]["ca.key"], b64(b"ca key"));
    assert_eq!(body["data"]["ca-bundle.crt"], b64(b"bundle"));

    let (created, _) = tokio::join!(
        cluster.create_secret(&data),
        answer(
            &mut api,
            Method::POST,
            SECRETS,
            status(409, "AlreadyExists")
        )
    );
    assert!(
        matches!(created, Err(ClusterError::Conflict { what: "Secret" })),
        "{created:?}"
    );
}

#[tokio::test]
async fn replace_puts_the_read_resource_version_and_a_stale_one_is_a_conflict() {
    let (cluster, mut api) = cluster();
    let data = data();
    let (replaced, (_, body)) = tokio::join!(
        cluster.replace_secret(&data, "42"),
        answer(
            &mut api,
            Method::PUT,
            SECRET,
            (StatusCode::OK, secret_json("43", &data))
        )
    );
    assert_eq!(replaced.unwrap().resource_version, "43");
    assert_eq!(body["metadata"]["resourceVersion"], "42");
    assert_eq!(body["data"]["tls.crt"], b64(b"leaf"));

    let (replaced, _) = tokio::join!(
        cluster.replace_secret(&data, "42"),
        answer(&mut api, Method::PUT, SECRET, status(409, "Conflict"))
    );
    assert!(
        matches!(replaced, Err(ClusterError::Conflict { .. })),
        "{replaced:?}"
    );
}

#[tokio::test]
async fn forbidden_is_an_api_error_naming_the_step() {
    let (cluster, mut api) = cluster();
    let (got, _) = tokio::join!(
        cluster.get_secret(),
        answer(&mut api, Method::GET, SECRET, status(403, "Forbidden"))
    );
    let err = got.unwrap_err();
    assert!(
        matches!(
            err,
            ClusterError::Api {
                step: "reading the Secret",
                ..
            }
        ),
        "{err:?}"
    );
}

fn mwc(rv: &str, bundles: &[Option<&str>]) -> Value {
    let webhooks: Vec<Value> = bundles
        .iter()
        .enumerate()
        .map(|(i, bundle)| {
            let mut client_config = json!({"service": {"name": "podid-webhook", "namespace": "podid-system", "path": "/mutate"}});
            if let Some(bundle) = bundle {
                client_config["caBundle"] = json!(b64(bundle.as_bytes()));
            }
            json!({"name": format!("pods{i}.podid.io"), "clientConfig": client_config,
                   "sideEffects": "None", "admissionReviewVersions": ["v1"]})
        })
        .collect();
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "podid-webhook", "resourceVersion": rv},
        "webhooks": webhooks,
    })
}

#[tokio::test]
async fn bundles_are_read_from_every_webhook_entry() {
    let (cluster, mut api) = cluster();
    let reply = mwc("9", &[Some("old"), None]);
    let (read, _) = tokio::join!(
        cluster.webhook_bundles(),
        answer(&mut api, Method::GET, MWC, (StatusCode::OK, reply))
    );
    let expected = Published {
        resource_version: "9".into(),
        bundles: vec![b"old".to_vec(), Vec::new()],
    };
    assert_eq!(read.unwrap(), expected);
}

#[tokio::test]
async fn publish_patches_only_the_ca_bundles_guarded_by_the_resource_version() {
    let (cluster, mut api) = cluster();
    let current = Published {
        resource_version: "9".into(),
        bundles: vec![b"old".to_vec(), Vec::new()],
    };
    let (published, (content_type, body)) = tokio::join!(
        cluster.publish_bundle(&current, b"new bundle"),
        answer(
            &mut api,
            Method::PATCH,
            MWC,
            (StatusCode::OK, mwc("10", &[Some("new bundle"); 2]))
        )
    );
    published.unwrap();
    assert_eq!(content_type.as_deref(), Some("application/json-patch+json"));
    let encoded = b64(b"new bundle");
    assert_eq!(
        body,
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "9"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": encoded},
            {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded},
        ])
    );

    // A failed `test` is 422: someone changed the configuration since it was read.
    let (published, _) = tokio::join!(
        cluster.publish_bundle(&current, b"new bundle"),
        answer(&mut api, Method::PATCH, MWC, status(422, "Invalid"))
    );
    assert!(
        matches!(published, Err(ClusterError::Conflict { .. })),
        "{published:?}"
    );
}

#[tokio::test]
async fn first_pass_creates_the_secret_then_publishes_its_bundle() {
    let (cluster, mut api) = cluster();
    let resolver = Arc::new(ReloadingCertResolver::empty());
    let service = ServiceName::new("podid-webhook", "podid-system");
    let mut manager = CertManager::new(
        cluster,
        SystemClock,
        RotationPolicy::default(),
        service,
        Arc::clone(&resolver),
    );
    let api_server = async {
        answer(&mut api, Method::GET, SECRET, status(404, "NotFound")).await;
        // Echo the created Secret back, as the API server does.
        let (request, send) = api.next_request().await.unwrap();
        assert_eq!(
            (request.method(), request.uri().path()),
            (&Method::POST, SECRETS)
        );
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        let mut created: Value = serde_json::from_slice(&bytes).unwrap();
        created["metadata"]["resourceVersion"] = json!("1");
        let bundle = created["data"]["ca-bundle.crt"]
            .as_str()
            .unwrap()
            .to_owned();
        let reply = Response::builder()
            .status(StatusCode::CREATED)
            .body(Body::from(serde_json::to_vec(&created).unwrap()))
            .unwrap();
        send.send_response(reply);
        answer(
            &mut api,
            Method::GET,
            MWC,
            (StatusCode::OK, mwc("5", &[None])),
        )
        .await;
        let (_, patch) = answer(
            &mut api,
            Method::PATCH,
            MWC,
            (StatusCode::OK, mwc("6", &[None])),
        )
        .await;
        assert_eq!(patch[1]["value"], bundle);
    };
    let (pass, ()) = tokio::join!(manager.pass(), api_server);
    let pass = pass.unwrap();
    assert_eq!(pass.plan, Plan::Keep);
    assert!(pass.wrote && pass.published);
    assert!(resolver.is_loaded());
}
