//! Graceful shutdown: in-flight requests complete, new connections are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use support::client::dribble;
use support::{TestServer, admit, decode_patch, eventually, response_of, review_fixture, with_uid};
use tokio::net::TcpStream;

/// Waits until connecting to `addr` is refused.
async fn wait_refused(addr: SocketAddr) {
    eventually("new connections are refused", || async move {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_request_completes_after_shutdown_and_new_connections_are_refused() {
    let mut server = TestServer::start().await;
    let mut conn = server.connect().await;
    // The connection is established and served before the slow request starts.
    decode_patch(&admit(&mut conn, &review_fixture("job-pod")).await);
    let review = with_uid(review_fixture("large-pod"), "in-flight-1");
    let body = serde_json::to_vec(&review).unwrap();
    let pieces: Vec<Bytes> = body
        .chunks(body.len() / 5 + 1)
        .map(Bytes::copy_from_slice)
        .collect();
    // Five pieces 300 ms apart: well inside the 10 s request timeout, well past the shutdown.
    let in_flight = tokio::spawn(async move {
        let reply = conn
            .request(
                Method::POST,
                "/mutate",
                dribble(pieces, Duration::from_millis(300)),
            )
            .await;
        (reply, conn)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !in_flight.is_finished(),
        "the request was meant to still be in flight"
    );

    server.shutdown();

    wait_refused(server.addr).await;
    wait_refused(server.admin).await;
    let (reply, conn) = in_flight.await.unwrap();
    let reply = reply.expect("the in-flight request is answered");
    assert_eq!(reply.status, StatusCode::OK);
    decode_patch(&response_of(&reply, "in-flight-1"));
    // Its connection is not kept for more requests, and the server stops.
    eventually("the in-flight connection is closed", || {
        let closed = conn.is_closed();
        async move { closed.then_some(()) }
    })
    .await;
    server.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    let mut server = TestServer::start_with(true, |cfg| {
        cfg.shutdown_grace = Duration::from_secs(120);
    })
    .await;
    let mut idle = server.connect().await;
    decode_patch(&admit(&mut idle, &review_fixture("deployment-pod")).await);
    let mut admin = server.connect_admin().await;
    assert_eq!(admin.get("/healthz").await.status, StatusCode::OK);

    server.shutdown();

    // Well under the grace period: idle connections are closed, not waited for.
    server.stopped().await;
    assert!(TcpStream::connect(server.addr).await.is_err());
    let mut idle = idle;
    assert!(
        idle.request(Method::GET, "/healthz", support::client::empty())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delay_keeps_serving_while_readyz_fails_then_refuses_connections() {
    let mut server = TestServer::start_with(true, |cfg| {
        cfg.shutdown_delay = Duration::from_secs(2);
    })
    .await;
    let mut admin = server.connect_admin().await;
    assert_eq!(admin.get("/readyz").await.status, StatusCode::OK);

    server.shutdown();

    // Soon not ready, while new connections are still admitted and served.
    let admin_addr = server.admin;
    let readyz = eventually("readyz fails once shutdown begins", || async move {
        let mut admin = support::client::Conn::plain(admin_addr).await.ok()?;
        let reply = admin.get("/readyz").await;
        (reply.status == StatusCode::SERVICE_UNAVAILABLE).then_some(reply)
    })
    .await;
    assert_eq!(readyz.json()["shuttingDown"], true);
    let mut conn = server.connect().await;
    decode_patch(&admit(&mut conn, &review_fixture("deployment-pod")).await);

    wait_refused(server.addr).await;
    server.stopped().await;
}
