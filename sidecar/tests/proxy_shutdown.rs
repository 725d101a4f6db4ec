//! Shutdown with 50 token requests in flight behind a slow IMDS: all are answered, and
//! `/ready` fails before the listeners close (`shutdown_delay`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use proxy_support::{Running, TokenReply, VM, World, get};

/// Token requests in flight when shutdown starts.
const IN_FLIGHT: usize = 50;
/// What the emulated IMDS takes for every token request.
const IMDS_LATENCY: Duration = Duration::from_millis(1500);
const SHUTDOWN_DELAY: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_50_token_requests_in_flight_answers_all_and_ready_fails_first() {
    let world = World::start().await;
    let mut config = world.config(vec![world.msi("id-a")]);
    config.shutdown_delay = SHUTDOWN_DELAY;
    let mut proxy = Running::ready(config).await;
    world.emulator.set_imds_latency(VM, IMDS_LATENCY);

    // Distinct resources: each is a cache miss, so each waits on the slow IMDS.
    let (addr, admin) = (proxy.addr, proxy.admin);
    let mut requests = Vec::new();
    for i in 0..IN_FLIGHT {
        let resource = format!("https://app-{i}.example.com");
        requests.push(tokio::spawn(async move {
            let target = format!(
                "{}?api-version=2018-02-01&resource={}",
                proxy_support::TOKEN,
                proxy_support::enc(&resource)
            );
            (resource, get(addr, &target, &[("Metadata", "true")]).await)
        }));
    }
    tokio::time::sleep(IMDS_LATENCY / 3).await;
    assert!(requests.iter().all(|r| !r.is_finished()), "all in flight");

    let started = Instant::now();
    proxy.shutdown();
    let mut not_ready_at = None;
    let refused_at = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "listener never closed"
        );
        if not_ready_at.is_none() {
            let ready =
                podid_azure_emulator::client::request(admin, "GET", "/ready", &[], "").await;
            if ready.map(|r| r.status).ok() != Some(200) {
                not_ready_at = Some(started.elapsed());
            }
        }
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break started.elapsed(),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let not_ready_at = not_ready_at.expect("/ready failed before the listener closed");
    assert!(
        not_ready_at < refused_at,
        "{not_ready_at:?} < {refused_at:?}"
    );

    for request in requests {
        let (resource, reply) = request.await.unwrap();
        reply.assert_token(&resource);
    }
    proxy.stopped().await;
    println!(
        "proxy shutdown: {IN_FLIGHT} in flight, 0 dropped; /ready failed after {not_ready_at:?}, listener closed after {refused_at:?}"
    );
}
