//! SIGTERM to the real `podid-webhook` binary with 50 requests in flight: none is dropped,
//! and `/readyz` fails before the listener closes (`--shutdown-delay`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use podid_certs::testca::TestCa;
use support::client::{Conn, client_config, dribble};
use support::server::{IDENTITIES_YAML, SANS, write_pair};
use support::{DEADLINE, decode_patch, eventually, response_of, review_fixture, with_uid};

/// Requests in flight when SIGTERM arrives.
const IN_FLIGHT: usize = 50;
/// Each body arrives in this many pieces, [`PIECE_GAP`] apart: ~3.6 s per request.
const PIECES: usize = 10;
const PIECE_GAP: Duration = Duration::from_millis(400);
/// `--shutdown-delay`: serving, not ready, before the listener closes.
const SHUTDOWN_DELAY: Duration = Duration::from_millis(1500);

/// A loopback port free at the time of asking.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The webhook binary, killed if the test ends early.
struct Webhook(Child);

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_50_requests_in_flight_drops_none_and_readyz_fails_first() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let identities = dir.path().join("identities.yaml");
    std::fs::write(&identities, IDENTITIES_YAML).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let ca = TestCa::new();
    write_pair(&cert, &key, &ca.leaf(&SANS));
    let (addr, admin) = (free_port(), free_port());
    let mut webhook = Webhook(
        Command::new(env!("CARGO_BIN_EXE_podid-webhook"))
            .args([
                "--listen",
                &addr.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--identities-file")
            .arg(&identities)
            .args(["--shutdown-delay", "1500ms", "--shutdown-grace", "30s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podid-webhook starts"),
    );
    let readyz = |admin| async move {
        let mut conn = Conn::plain(admin).await.ok()?;
        Some(conn.get("/readyz").await.status)
    };
    eventually("webhook ready", || async move {
        (readyz(admin).await == Some(StatusCode::OK)).then_some(())
    })
    .await;

    let tls = client_config(&[&ca]);
    let mut requests = Vec::new();
    for i in 0..IN_FLIGHT {
        let mut conn = Conn::tls(addr, tls.clone()).await.expect("TLS connection");
        let uid = format!("in-flight-{i}");
        let body = serde_json::to_vec(&with_uid(review_fixture("large-pod"), &uid)).unwrap();
        let pieces: Vec<Bytes> = body
            .chunks(body.len() / PIECES + 1)
            .map(Bytes::copy_from_slice)
            .collect();
        requests.push(tokio::spawn(async move {
            let reply = conn
                .request(Method::POST, "/mutate", dribble(pieces, PIECE_GAP))
                .await;
            (uid, reply)
        }));
    }
    tokio::time::sleep(PIECE_GAP).await;
    assert!(
        requests.iter().all(|r| !r.is_finished()),
        "all 50 in flight"
    );

    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &webhook.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    // /readyz fails while the listener still accepts; only then is it closed.
    let mut not_ready_at = None;
    let refused_at = loop {
        assert!(signalled.elapsed() < DEADLINE, "the listener never closed");
        if not_ready_at.is_none() && readyz(admin).await != Some(StatusCode::OK) {
            not_ready_at = Some(signalled.elapsed());
        }
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break signalled.elapsed(),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let not_ready_at = not_ready_at.expect("readyz failed before the listener closed");
    assert!(
        not_ready_at < refused_at,
        "{not_ready_at:?} < {refused_at:?}"
    );
    assert!(
        refused_at >= SHUTDOWN_DELAY,
        "listener closed after the delay: {refused_at:?}"
    );

    for request in requests {
        let (uid, reply) = request.await.unwrap();
        let reply = reply.unwrap_or_else(|e| panic!("{uid} dropped: {e}"));
        assert_eq!(reply.status, StatusCode::OK, "{uid}: {}", reply.text());
        decode_patch(&response_of(&reply, &uid));
    }
    let status = eventually("the webhook exits", || {
        let exited = webhook.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(status.success(), "exit status {status}");
    println!(
        "sigterm: {IN_FLIGHT} in flight, 0 dropped; readyz failed after {not_ready_at:?}, listener closed after {refused_at:?}, exited after {:?}",
        signalled.elapsed()
    );
}
