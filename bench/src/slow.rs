//! `webhook-bench slow-clients`: a normal client's latency with idle keep-alive connections
//! and slowloris clients open against podid, and the server's memory, in one table.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::load::{self, SERVER_NAME, Target};
use crate::servers::{Running, Server};
use crate::{handler, pod, run};

/// How long the loaded phase lasts: past the server's 10 s header-read timeout.
const LOADED: Duration = Duration::from_secs(13);
/// The normal client's pause between requests (a light, steady load).
const GAP: Duration = Duration::from_millis(10);

/// Runs the phases and prints the table.
pub fn run(identities: &std::path::Path, idle: usize, slowloris: usize) -> anyhow::Result<()> {
    let body = Bytes::from(pod::admission_review());
    let index = handler::load_index(identities)?;
    let canned = handler::answer(&body, &index)?;
    let dir = tempfile::tempdir()?;
    let ca = podid_certs::testca::TestCa::new();
    let files = run::write_files(dir.path(), &ca, &canned, identities)?;
    let server = Running::start(Server::Podid, &files)?;
    let target = Target {
        addr: server.addr,
        tls: TlsConnector::from(Arc::new(ca.client_config())),
        body,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        load::probe(&target, Duration::from_secs(10)).await?;
        let quiet = normal_client(&target, Duration::from_secs(5)).await?;
        let rss_quiet = rss_kib(server.pid());
        let mut held = Vec::with_capacity(idle);
        for _ in 0..idle {
            let mut sender = load::connect(&target).await?;
            load::send(&mut sender, &target).await.map_err(anyhow::Error::msg)?;
            held.push(sender);
        }
        let rss_idle = rss_kib(server.pid());
        let closed = Arc::new(AtomicUsize::new(0));
        for _ in 0..slowloris {
            tokio::spawn(trickle(target.clone(), closed.clone()));
        }
        let loaded = normal_client(&target, LOADED).await?;
        let rss_loaded = rss_kib(server.pid());
        let closed = closed.load(Ordering::Relaxed);
        println!("slow clients: podid, {idle} idle keep-alive TLS connections, {slowloris} slowloris clients (a request head, 1 byte/s)");
        println!("phase                                  requests   p50        p99        p99/idle p99  server RSS");
        print_row("normal client alone", &quiet, &quiet, rss_quiet);
        println!("{:<38} {:>8}   {:<10} {:<10} {:<13} {} KiB", format!("+ {idle} idle keep-alive"), "-", "-", "-", "-", rss_idle);
        print_row(&format!("+ {slowloris} slowloris (13 s)"), &loaded, &quiet, rss_loaded);
        println!("slowloris connections closed by the server within {LOADED:?}: {closed} of {slowloris}");
        let idle_closed = held.iter().filter(|s| s.is_closed()).count();
        println!("idle keep-alive connections closed by the server by then: {idle_closed} of {idle}");
        drop(held);
        anyhow::Ok(())
    })
}

fn print_row(name: &str, latencies: &[Duration], quiet: &[Duration], rss: u64) {
    let p = |l: &[Duration], q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)];
    let ratio = p(latencies, 0.99).as_secs_f64() / p(quiet, 0.99).as_secs_f64();
    println!(
        "{name:<38} {:>8}   {:<10} {:<10} {:<13} {rss} KiB",
        latencies.len(),
        format!("{:.3} ms", p(latencies, 0.5).as_secs_f64() * 1e3),
        format!("{:.3} ms", p(latencies, 0.99).as_secs_f64() * 1e3),
        format!("{ratio:.2}"),
    );
}

/// Sequential reviews on one keep-alive connection for `how_long`; sorted latencies.
async fn normal_client(target: &Target, how_long: Duration) -> anyhow::Result<Vec<Duration>> {
    let mut sender = load::connect(target).await?;
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < how_long {
        let t = Instant::now();
        load::send(&mut sender, target)
            .await
            .map_err(anyhow::Error::msg)?;
        latencies.push(t.elapsed());
        tokio::time::sleep(GAP).await;
    }
    latencies.sort_unstable();
    Ok(latencies)
}

/// A TLS connection that sends a request head one byte a second until the server closes it.
async fn trickle(target: Target, closed: Arc<AtomicUsize>) {
    let Ok(tcp) = TcpStream::connect(target.addr).await else {
        return;
    };
    let Ok(name) = ServerName::try_from(SERVER_NAME) else {
        return;
    };
    let Ok(mut tls) = target.tls.connect(name, tcp).await else {
        return;
    };
    let head = b"POST /mutate HTTP/1.1\r\nHost: podid-webhook.podid-system.svc\r\nX-Padding: ";
    for byte in head.iter().chain(std::iter::repeat(&b'a')).take(30) {
        if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
            closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `VmRSS` of `pid` in KiB (0 when unreadable).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
