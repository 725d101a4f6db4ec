//! Self-managed certificates end to end: rotation under continuous TLS traffic, and replicas racing.
//!
//! The cluster is `memory::MemoryCluster`, the clock a `FakeClock`; the TLS is
//! real: two replicas serve through their `ReloadingCertResolver` on loopback,
//! and a client that trusts only the currently published bundle (re-read
//! before every connection, as the API server's webhook client would) calls
//! them without pause while six years pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podid_certs::material::parse_bundle;
use podid_certs::memory::MemoryCluster;
use podid_certs::{
    CertManager, Clock, FakeClock, Plan, ReloadingCertResolver, RotationPolicy, ServiceName,
    server_config,
};
use rustls::client::Resumption;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const DAY: Duration = Duration::from_secs(86_400);

fn service() -> ServiceName {
    ServiceName::new("podid-webhook", "podid-system")
}

/// Starts at a whole second, so certificate times compare exactly.
fn start() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

type Manager = CertManager<MemoryCluster, FakeClock>;

fn replica(cluster: &MemoryCluster, clock: &FakeClock) -> (Manager, Arc<ReloadingCertResolver>) {
    let resolver = Arc::new(ReloadingCertResolver::empty());
    let manager = CertManager::new(
        cluster.clone(),
        clock.clone(),
        RotationPolicy::default(),
        service(),
        Arc::clone(&resolver),
    );
    (manager, resolver)
}

/// A TLS server answering every connection with one `200 OK`.
async fn serve(resolver: Arc<ReloadingCertResolver>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = server_config(resolver);
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // Without it, delayed ACKs cost ~40 ms a connection.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// The client sees the fake clock's time, as the certificates were issued on it.
#[derive(Debug)]
struct FakeTime(FakeClock);

impl TimeProvider for FakeTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(
            self.0.now().duration_since(UNIX_EPOCH).ok()?,
        ))
    }
}

/// One request on a new connection, trusting only `bundle`.
async fn call(addr: SocketAddr, bundle: &[u8], clock: &FakeClock) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    for ca in parse_bundle(bundle).ok_or("nothing published")? {
        roots.add(ca.der).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config =
        ClientConfig::builder_with_details(provider, Arc::new(FakeTime(clock.clone())))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(service().host()).unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(b"POST /mutate HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply).await;
    reply
        .starts_with(b"HTTP/1.1 200")
        .then_some(())
        .ok_or_else(|| format!("reply {:?}", String::from_utf8_lossy(&reply)))
}

/// Connections completed, and a way to wait for more.
#[derive(Default)]
struct Progress {
    calls: AtomicU64,
    notify: Notify,
}

impl Progress {
    fn done_one(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait_for_more(&self, more: u64) {
        let target = self.calls.load(Ordering::SeqCst) + more;
        while self.calls.load(Ordering::SeqCst) < target {
            let notified = self.notify.notified();
            if self.calls.load(Ordering::SeqCst) >= target {
                break;
            }
            tokio::time::timeout(Duration::from_secs(10), notified)
                .await
                .expect("the client stalled");
        }
    }
}

/// What the API server trusts: each webhook entry's bundle as published
/// [`LAG`] ago (its informer lags), recorded after every step.
#[derive(Default)]
struct History(Mutex<Vec<(SystemTime, Vec<Vec<u8>>)>>);

/// How far the API server's view of the configuration lags; less than the
/// policy's `publish_grace`, which is what covers it.
const LAG: Duration = Duration::from_secs(60);

impl History {
    fn record(&self, at: SystemTime, bundles: Vec<Vec<u8>>) {
        self.0.lock().unwrap().push((at, bundles));
    }

    fn as_of(&self, at: SystemTime, entry: usize) -> Vec<u8> {
        let history = self.0.lock().unwrap();
        let seen = history.iter().rev().find(|(when, _)| *when <= at);
        seen.map(|(_, bundles)| bundles[entry].clone())
            .unwrap_or_default()
    }
}

/// Calls the replicas without pause until `stop`, alternating replicas,
/// webhook entries, and a lagging or a current view of the bundle.
async fn client(
    addrs: [SocketAddr; 2],
    (cluster, history, clock): (MemoryCluster, Arc<History>, FakeClock),
    (stop, progress, failures): (Arc<AtomicBool>, Arc<Progress>, Arc<Mutex<Vec<String>>>),
) {
    for i in 0usize.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (entry, lagging) = (i % 2, (i / 2) % 2 == 0);
        let bundle = if lagging {
            history.as_of(clock.now() - LAG, entry)
        } else {
            cluster.bundles()[entry].clone()
        };
        if let Err(e) = call(addrs[entry], &bundle, &clock).await {
            let view = if lagging { "lagging" } else { "current" };
            failures
                .lock()
                .unwrap()
                .push(format!("call {i} ({view}) at {:?}: {e}", clock.now()));
        }
        progress.done_one();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_and_serving_rotation_fail_no_request_of_a_client_trusting_the_published_bundle() {
    let clock = FakeClock::new(start());
    let cluster = MemoryCluster::new(2);
    let (mut first, first_resolver) = replica(&cluster, &clock);
    let (mut second, second_resolver) = replica(&cluster, &clock);
    first.pass().await.unwrap();
    second.pass().await.unwrap();
    let history = Arc::new(History::default());
    // As if installed a while ago: the API servers have seen the first bundle.
    history.record(clock.now() - LAG, cluster.bundles());
    let addrs = [serve(first_resolver).await, serve(second_resolver).await];
    let (stop, progress) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Progress::default()),
    );
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = tokio::spawn(client(
        addrs,
        (cluster.clone(), history.clone(), clock.clone()),
        (stop.clone(), progress.clone(), failures.clone()),
    ));

    let (mut plans, mut cas, mut max_bundle, mut fine) = (Vec::new(), Vec::new(), 0, false);
    let end = clock.now() + 6 * 365 * DAY;
    while clock.now() < end {
        // Minute steps while a CA switch is pending, to meet the grace exactly.
        clock.advance(if fine { LAG } else { 3 * DAY });
        fine = false;
        for manager in [&mut first, &mut second] {
            let pass = manager.pass().await.unwrap();
            fine |= matches!(pass.plan, Plan::StageCa | Plan::AwaitPublication);
            if pass.plan.writes() {
                plans.push(pass.plan);
            }
        }
        history.record(clock.now(), cluster.bundles());
        // Every connection in flight now started after the previous step.
        progress.wait_for_more(4).await;
        let secret = cluster.secret().unwrap();
        if !cas.contains(&secret.ca_crt) {
            cas.push(secret.ca_crt.clone());
        }
        max_bundle = max_bundle.max(parse_bundle(&secret.ca_bundle).unwrap().len());
    }
    stop.store(true, Ordering::SeqCst);
    client.await.unwrap();

    let failures = failures.lock().unwrap();
    let shown = &failures[..failures.len().min(5)];
    assert!(
        failures.is_empty(),
        "{} failed calls: {shown:#?}",
        failures.len()
    );
    assert!(progress.calls.load(Ordering::SeqCst) > 2_000);
    assert_eq!(cas.len(), 2, "one CA rotation in six years");
    assert_eq!(max_bundle, 2);
    let count = |p: Plan| plans.iter().filter(|&&q| q == p).count();
    assert_eq!(count(Plan::StageCa), 1);
    assert_eq!(count(Plan::RetireOldCas), 1);
    assert_eq!(
        count(Plan::RenewServing(podid_certs::RenewReason::NewCa)),
        1
    );
    assert!(plans.len() >= 9, "{plans:?}");
    assert_eq!(cluster.counts().creates, 1);
}

#[tokio::test]
async fn replicas_racing_to_issue_end_with_one_secret_that_both_serve() {
    let clock = FakeClock::new(start());
    let cluster = MemoryCluster::new(1).racing(3);
    let replicas: Vec<_> = (0..3).map(|_| replica(&cluster, &clock)).collect();
    let (mut managers, resolvers): (Vec<_>, Vec<_>) = replicas.into_iter().unzip();
    let passes = futures::future::join_all(managers.iter_mut().map(|m| m.pass())).await;

    let wrote: Vec<bool> = passes.into_iter().map(|p| p.unwrap().wrote).collect();
    assert_eq!(wrote.iter().filter(|w| **w).count(), 1, "{wrote:?}");
    let counts = cluster.counts();
    assert_eq!(
        (counts.creates, counts.replaces, counts.conflicts),
        (1, 0, 2)
    );
    let secret = cluster.secret().unwrap();
    let leaf = secret.parse().unwrap().leaf().clone();
    for resolver in &resolvers {
        assert_eq!(resolver.current().unwrap().cert[0], leaf);
    }
    assert_eq!(cluster.bundles(), [secret.ca_bundle]);
}

#[tokio::test]
async fn replicas_racing_to_stage_a_ca_introduce_only_one() {
    let clock = FakeClock::new(start());
    let setup = MemoryCluster::new(1);
    replica(&setup, &clock).0.pass().await.unwrap();
    let cluster = setup.racing(2);
    let (mut a, _) = replica(&cluster, &clock);
    let (mut b, _) = replica(&cluster, &clock);
    // The CA's last year begins.
    clock.advance(4 * 365 * DAY + DAY);
    let before = cluster.counts();
    let (pa, pb) = tokio::join!(a.pass(), b.pass());
    let plans = [pa.unwrap().plan, pb.unwrap().plan];
    assert!(plans.contains(&Plan::StageCa), "{plans:?}");
    let after = cluster.counts();
    assert_eq!(after.conflicts - before.conflicts, 1);
    let bundle = parse_bundle(&cluster.secret().unwrap().ca_bundle).unwrap();
    assert_eq!(bundle.len(), 2, "old and one new CA, not two new ones");
}
