//! Real TLS handshakes against the resolver, kept current by the file watcher.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podid_certs::testca::TestCa;
use podid_certs::{ReloadingCertResolver, server_config, watch_files};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const SAN: &str = "podid-webhook.podid-system.svc";
const INTERVAL: Duration = Duration::from_millis(50);
/// Generous so a loaded CI machine does not flake; a swap takes one or two intervals.
const DEADLINE: Duration = Duration::from_secs(3);

/// Accepts TLS connections with the webhook's config until the test ends.
async fn serve(resolver: Arc<ReloadingCertResolver>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config(resolver)));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake is the client's to see; the server moves on.
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.read(&mut [0u8; 1]).await;
                }
            });
        }
    });
    addr
}

#[derive(Debug)]
struct Handshake {
    alpn: Option<Vec<u8>>,
    version: ProtocolVersion,
    leaf: CertificateDer<'static>,
}

async fn handshake(addr: SocketAddr, config: ClientConfig) -> io::Result<Handshake> {
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from(SAN).unwrap(), tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    Ok(Handshake {
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        version: conn.protocol_version().unwrap(),
        leaf: conn.peer_certificates().unwrap()[0].clone(),
    })
}

/// Retries until `ca`'s client completes a handshake, or panics at the deadline.
async fn wait_until_served_by(addr: SocketAddr, ca: &TestCa) -> Handshake {
    let start = Instant::now();
    loop {
        match handshake(addr, ca.client_config()).await {
            Ok(done) => return done,
            Err(err) if start.elapsed() > DEADLINE => panic!("not served in time: {err}"),
            Err(_) => tokio::time::sleep(INTERVAL / 5).await,
        }
    }
}

fn leaf_der(cert_pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()
}

fn write_pair(dir: &Path, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    (cert_path, key_path)
}

/// Starts the watcher on `dir`'s pair; dropping the sender stops it.
fn start_watcher(
    resolver: &Arc<ReloadingCertResolver>,
    cert: PathBuf,
    key: PathBuf,
) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    tokio::spawn(watch_files(resolver.clone(), cert, key, INTERVAL, shutdown));
    stop
}

fn loaded_resolver(pair: &(String, String)) -> Arc<ReloadingCertResolver> {
    let key = podid_certs::certified_key_from_pem(
        "tls.crt".as_ref(),
        pair.0.as_bytes(),
        "tls.key".as_ref(),
        pair.1.as_bytes(),
    )
    .unwrap();
    Arc::new(ReloadingCertResolver::new(key))
}

#[tokio::test]
async fn handshake_negotiates_http11_over_tls13() {
    let ca = TestCa::new();
    let pair = ca.leaf(&[SAN]);
    let addr = serve(loaded_resolver(&pair)).await;

    let done = handshake(addr, ca.client_config()).await.unwrap();

    assert_eq!(done.alpn.as_deref(), Some(b"http/1.1".as_slice()));
    assert_eq!(done.version, ProtocolVersion::TLSv1_3);
    assert_eq!(done.leaf, leaf_der(&pair.0));
}

#[tokio::test]
async fn tls12_only_client_is_served_over_tls12() {
    let ca = TestCa::new();
    let addr = serve(loaded_resolver(&ca.leaf(&[SAN]))).await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(ca.root_store())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    let done = handshake(addr, config).await.unwrap();

    assert_eq!(done.version, ProtocolVersion::TLSv1_2);
    assert_eq!(done.alpn.as_deref(), Some(b"http/1.1".as_slice()));
}

#[tokio::test]
async fn client_preferring_h2_still_gets_http11() {
    let ca = TestCa::new();
    let addr = serve(loaded_resolver(&ca.leaf(&[SAN]))).await;
    let mut config = ca.client_config();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let done = handshake(addr, config).await.unwrap();

    assert_eq!(done.alpn.as_deref(), Some(b"http/1.1".as_slice()));
}

#[tokio::test]
async fn client_offering_only_h2_is_refused() {
    let ca = TestCa::new();
    let addr = serve(loaded_resolver(&ca.leaf(&[SAN]))).await;
    let mut config = ca.client_config();
    config.alpn_protocols = vec![b"h2".to_vec()];

    let err = handshake(addr, config).await.unwrap_err();

    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");
}

#[tokio::test]
async fn client_trusting_another_ca_is_refused() {
    let addr = serve(loaded_resolver(&TestCa::new().leaf(&[SAN]))).await;

    let err = handshake(addr, TestCa::new().client_config())
        .await
        .unwrap_err();

    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn empty_resolver_refuses_handshakes_until_the_watcher_loads_files() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let resolver = Arc::new(ReloadingCertResolver::empty());
    let addr = serve(resolver.clone()).await;
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let _stop = start_watcher(&resolver, cert, key);

    // No files yet: the handshake fails with an alert and the server lives on.
    assert!(handshake(addr, ca.client_config()).await.is_err());
    assert!(!resolver.is_loaded());

    let pair = ca.leaf(&[SAN]);
    write_pair(dir.path(), &pair);
    let done = wait_until_served_by(addr, &ca).await;

    assert_eq!(done.leaf, leaf_der(&pair.0));
    assert!(resolver.is_loaded());
}

#[tokio::test]
async fn watcher_swaps_in_a_certificate_from_a_new_ca() {
    let (old_ca, new_ca) = (TestCa::new(), TestCa::new());
    let dir = tempfile::tempdir().unwrap();
    let old = old_ca.leaf(&[SAN]);
    let (cert, key) = write_pair(dir.path(), &old);
    let resolver = loaded_resolver(&old);
    let addr = serve(resolver.clone()).await;
    let _stop = start_watcher(&resolver, cert, key);

    // Unchanged files: the old certificate keeps serving tick after tick.
    for _ in 0..3 {
        tokio::time::sleep(INTERVAL).await;
        let done = handshake(addr, old_ca.client_config()).await.unwrap();
        assert_eq!(done.leaf, leaf_der(&old.0));
    }

    let new = new_ca.leaf(&[SAN]);
    write_pair(dir.path(), &new);
    let done = wait_until_served_by(addr, &new_ca).await;

    assert_eq!(done.leaf, leaf_der(&new.0));
    assert!(handshake(addr, old_ca.client_config()).await.is_err());
}

#[tokio::test]
async fn half_written_pair_does_not_replace_the_good_certificate() {
    let (old_ca, new_ca) = (TestCa::new(), TestCa::new());
    let dir = tempfile::tempdir().unwrap();
    let old = old_ca.leaf(&[SAN]);
    let (cert, key) = write_pair(dir.path(), &old);
    let resolver = loaded_resolver(&old);
    let addr = serve(resolver.clone()).await;
    let _stop = start_watcher(&resolver, cert.clone(), key.clone());

    // The new certificate lands, its key does not (yet).
    let new = new_ca.leaf(&[SAN]);
    std::fs::write(&cert, &new.0).unwrap();
    tokio::time::sleep(INTERVAL * 6).await;
    let done = handshake(addr, old_ca.client_config()).await.unwrap();
    assert_eq!(done.leaf, leaf_der(&old.0));

    std::fs::write(&key, &new.1).unwrap();
    let done = wait_until_served_by(addr, &new_ca).await;
    assert_eq!(done.leaf, leaf_der(&new.0));
}

/// Kubernetes writes a Secret volume as `tls.crt -> ..data/tls.crt` and
/// rotates it by re-pointing `..data` at a new directory in one rename.
#[cfg(unix)]
#[tokio::test]
async fn secret_volume_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;

    let (old_ca, new_ca) = (TestCa::new(), TestCa::new());
    let volume = tempfile::tempdir().unwrap();
    let root = volume.path();
    let old = old_ca.leaf(&[SAN]);
    std::fs::create_dir(root.join("..2026_01_01_v1")).unwrap();
    write_pair(&root.join("..2026_01_01_v1"), &old);
    symlink("..2026_01_01_v1", root.join("..data")).unwrap();
    symlink("..data/tls.crt", root.join("tls.crt")).unwrap();
    symlink("..data/tls.key", root.join("tls.key")).unwrap();
    let resolver = Arc::new(ReloadingCertResolver::empty());
    let addr = serve(resolver.clone()).await;
    let _stop = start_watcher(&resolver, root.join("tls.crt"), root.join("tls.key"));
    wait_until_served_by(addr, &old_ca).await;

    let new = new_ca.leaf(&[SAN]);
    std::fs::create_dir(root.join("..2026_02_01_v2")).unwrap();
    write_pair(&root.join("..2026_02_01_v2"), &new);
    symlink("..2026_02_01_v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_01_01_v1")).unwrap();

    let done = wait_until_served_by(addr, &new_ca).await;
    assert_eq!(done.leaf, leaf_der(&new.0));
}
