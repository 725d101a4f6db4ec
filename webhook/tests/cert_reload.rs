//! The serving certificate is swapped while requests flow, without a restart or a failed request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use podid_certs::testca::TestCa;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::client::client_config;
use support::server::{SANS, write_pair};
use support::{Conn, TestServer, decode_patch, eventually, response_of, review_fixture, with_uid};
use tokio::sync::watch;

/// What the client loop has seen so far.
#[derive(Clone, Debug, Default)]
struct Seen {
    requests: usize,
    failures: Vec<String>,
    /// Leaf certificates in the order they were first served.
    leaves: Vec<CertificateDer<'static>>,
    /// Requests answered after the newest leaf was first seen.
    since_last_change: usize,
}

/// One request on a new TLS connection, so every request sees the current certificate.
async fn one_request(
    server_addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    i: usize,
) -> Result<CertificateDer<'static>, String> {
    let mut conn = Conn::tls(server_addr, config)
        .await
        .map_err(|e| format!("request {i}: connect: {e}"))?;
    let leaf = conn.tls.as_ref().unwrap().leaf.clone();
    let uid = format!("reload-{i}");
    let review = with_uid(review_fixture("deployment-pod"), &uid);
    let body = serde_json::to_vec(&review).unwrap();
    let reply = conn
        .request(http::Method::POST, "/mutate", support::client::full(body))
        .await
        .map_err(|e| format!("request {i}: {e}"))?;
    decode_patch(&response_of(&reply, &uid));
    Ok(leaf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rewritten_on_disk_is_served_without_restart_or_failed_requests() {
    let server = TestServer::start().await;
    let new_ca = TestCa::new();
    // rustls resumes sessions by default, and a resumed session skips the certificate:
    // the server must refuse resumption for the client to ever see the new one.
    let trusting_both = client_config(&[&server.ca, &new_ca]);
    let (seen_tx, mut seen_rx) = watch::channel(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn({
        let (addr, stop) = (server.addr, Arc::clone(&stop));
        async move {
            let mut seen = Seen::default();
            while !stop.load(Ordering::Relaxed) {
                match one_request(addr, Arc::clone(&trusting_both), seen.requests).await {
                    Ok(leaf) if seen.leaves.last() == Some(&leaf) => seen.since_last_change += 1,
                    Ok(leaf) => {
                        seen.leaves.push(leaf);
                        seen.since_last_change = 1;
                    }
                    Err(failure) => seen.failures.push(failure),
                }
                seen.requests += 1;
                seen_tx.send_replace(seen.clone());
            }
            seen
        }
    });

    // Let requests flow with the first certificate, then rewrite both files in place.
    seen_rx.wait_for(|s| s.requests >= 10).await.unwrap();
    let old_leaf = CertificateDer::from_pem_file(&server.cert_path).unwrap();
    let new_pair = new_ca.leaf(&SANS);
    let new_leaf = CertificateDer::from_pem_slice(new_pair.0.as_bytes()).unwrap();
    write_pair(&server.cert_path, &server.key_path, &new_pair);
    eventually("the client sees the new certificate", || {
        let seen = seen_rx.borrow_and_update().clone();
        let swapped = seen.leaves.last() == Some(&new_leaf) && seen.since_last_change >= 10;
        async move { swapped.then_some(()) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let seen = client.await.unwrap();

    assert!(
        seen.failures.is_empty(),
        "failed requests: {:?}",
        seen.failures
    );
    assert_eq!(
        seen.leaves.len(),
        2,
        "old certificate came back after the new one"
    );
    assert_eq!(seen.leaves, [old_leaf, new_leaf]);
    // A client that trusts only the old CA is now refused: the old certificate is gone.
    assert!(
        Conn::tls(server.addr, server.client_config())
            .await
            .is_err()
    );
}
