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

/// Replacements in the rotation test: new leaves under the same CA and new CAs, alternating.
const REPLACEMENTS: usize = 10;
/// The client's rate of fresh TLS connections, one request each.
const RATE_PER_SECOND: u64 = 200;
/// Requests the client lets be outstanding at once.
const MAX_OUTSTANDING: usize = 64;

type Bundle = std::sync::RwLock<Arc<rustls::ClientConfig>>;

/// Makes `config` the trusted bundle; returns the generation it replaced.
fn publish(
    bundle: &Bundle,
    pending: &std::sync::Mutex<Vec<usize>>,
    config: Arc<rustls::ClientConfig>,
) -> usize {
    let mut pending = pending.lock().unwrap();
    *bundle.write().unwrap() = config;
    pending.push(0);
    pending.len() - 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_replacements_new_leaf_then_new_ca_under_200_fresh_connections_a_second_fail_none() {
    let server = TestServer::start().await;
    // The CA bundle the client trusts, as the self-managed rotation publishes it in
    // the webhook configuration: old and new CA while they overlap.
    let bundle = Arc::new(std::sync::RwLock::new(client_config(&[&server.ca])));
    // Connections opened under each bundle and not finished yet, by bundle generation.
    let pending = Arc::new(std::sync::Mutex::new(vec![0usize]));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (addr, bundle, failures, stop) =
            (server.addr, bundle.clone(), failures.clone(), stop.clone());
        let pending = pending.clone();
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_micros(
                1_000_000 / RATE_PER_SECOND,
            ));
            let mut requests = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                // A loaded CI machine cannot always keep 200/s: skip a tick rather than
                // pile up a backlog that never drains (the achieved rate is printed).
                if pending.lock().unwrap().iter().sum::<usize>() >= MAX_OUTSTANDING {
                    continue;
                }
                // Under the lock `publish` takes: the bundle and its generation go together.
                let (config, generation) = {
                    let mut pending = pending.lock().unwrap();
                    *pending.last_mut().unwrap() += 1;
                    (Arc::clone(&bundle.read().unwrap()), pending.len() - 1)
                };
                let (failures, pending, i) = (failures.clone(), pending.clone(), requests.len());
                requests.push(tokio::spawn(async move {
                    if let Err(e) = one_request(addr, config, i).await {
                        failures.lock().unwrap().push(e);
                    }
                    pending.lock().unwrap()[generation] -= 1;
                }));
            }
            let sent = requests.len();
            for request in requests {
                request.await.unwrap();
            }
            sent
        }
    });

    // The CA signing the current leaf: the server's own first, then each new one.
    let mut owned: Option<TestCa> = None;
    let started = std::time::Instant::now();
    for round in 0..REPLACEMENTS {
        let signer = owned.as_ref().unwrap_or(&server.ca);
        let fresh = (round % 2 == 1).then(TestCa::new);
        let issuer = fresh.as_ref().unwrap_or(signer);
        let both = client_config(&[signer, issuer]);
        if fresh.is_some() {
            // As the self-managed rotation does: the new CA is trusted before it serves,
            // long enough for connections opened under the old bundle to be done.
            let before = publish(&bundle, &pending, both.clone());
            eventually("connections opened under the old bundle are done", || {
                let done = pending.lock().unwrap()[before] == 0;
                async move { done.then_some(()) }
            })
            .await;
        }
        let pair = issuer.leaf(&SANS);
        let leaf = CertificateDer::from_pem_slice(pair.0.as_bytes()).unwrap();
        write_pair(&server.cert_path, &server.key_path, &pair);
        eventually("the new certificate is served", || {
            let (probe, leaf) = (both.clone(), leaf.clone());
            async move {
                let conn = Conn::tls(server.addr, probe).await.ok()?;
                (conn.tls.as_ref()?.leaf == leaf).then_some(())
            }
        })
        .await;
        // Traffic on the new certificate for a while before the next replacement.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if let Some(fresh) = fresh {
            // The overlap ends: only the new CA is trusted from now on.
            publish(&bundle, &pending, client_config(&[&fresh]));
            owned = Some(fresh);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    let elapsed = started.elapsed();
    println!(
        "rotation: {REPLACEMENTS} replacements in {elapsed:.1?}, {sent} requests on fresh connections ({:.0}/s), {} failed",
        sent as f64 / elapsed.as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(sent >= 200, "the load ran: {sent} requests");
}
