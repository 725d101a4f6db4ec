//! Slowloris and idle keep-alive clients: the header-read timeout closes the slow ones,
//! and a normal client is served meanwhile (latency is measured in bench/, not here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use support::client::SERVER_NAME;
use support::{TestServer, admit, decode_patch, review_fixture, with_uid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Clients that send a request head one byte a second.
const SLOWLORIS: usize = 20;
/// Keep-alive connections that sent one request and then stay idle.
const IDLE: usize = 200;
/// The server's header-read timeout (webhook/src/serve.rs) and a margin for a loaded machine.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const MARGIN: Duration = Duration::from_secs(8);

/// A TLS connection that trickles a request head one byte a second until the server
/// closes it; returns how long the server let it live.
async fn slowloris(server: &TestServer) -> Duration {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut tls = TlsConnector::from(server.client_config())
        .connect(name, tcp)
        .await
        .unwrap();
    let started = Instant::now();
    let head = b"POST /mutate HTTP/1.1\r\nHost: podid-webhook.podid-system.svc\r\nContent-Type: application/json\r\nX-Padding: ";
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if started.elapsed() > HEADER_TIMEOUT + MARGIN {
            break;
        }
        if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
            return started.elapsed();
        }
        // A closed connection reads 0 bytes (or fails) at once; an open one times out.
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(1), tls.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return started.elapsed();
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_closed_by_the_header_timeout_while_others_are_served() {
    let server = TestServer::start().await;
    let mut idle = Vec::new();
    for i in 0..IDLE {
        let mut conn = server.connect().await;
        let review = with_uid(review_fixture("job-pod"), &format!("idle-{i}"));
        decode_patch(&admit(&mut conn, &review).await);
        idle.push(conn);
    }
    let slow: Vec<_> = (0..SLOWLORIS)
        .map(|_| {
            let server = &server;
            async move { slowloris(server).await }
        })
        .collect();
    let slow = futures::future::join_all(slow);
    let normal = async {
        let mut conn = server.connect().await;
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let review = with_uid(review_fixture("deployment-pod"), &format!("normal-{i}"));
            decode_patch(&admit(&mut conn, &review).await);
        }
    };
    let (lived, ()) = tokio::join!(slow, normal);
    for (i, lived) in lived.iter().enumerate() {
        assert!(
            *lived >= HEADER_TIMEOUT - Duration::from_secs(1) && *lived < HEADER_TIMEOUT + MARGIN,
            "slowloris {i} was closed after {lived:?}, not by the {HEADER_TIMEOUT:?} header timeout"
        );
    }
    println!(
        "slow clients: {SLOWLORIS} slowloris closed after {:?}..{:?}; {IDLE} idle keep-alive; the normal client served 20 of 20",
        lived.iter().min().unwrap(),
        lived.iter().max().unwrap()
    );
}
