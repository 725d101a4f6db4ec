//! One replica's certificate loop against the in-memory cluster: repairs, adoption, failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podid_certs::memory::MemoryCluster;
use podid_certs::{
    CertManager, Cluster, ClusterError, FakeClock, ManageError, Plan, Published,
    ReloadingCertResolver, RotationPolicy, SecretData, ServiceName, Stored,
};

const DAY: Duration = Duration::from_secs(86_400);

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn manager<C: Cluster>(
    cluster: C,
    clock: &FakeClock,
) -> (CertManager<C, FakeClock>, Arc<ReloadingCertResolver>) {
    let resolver = Arc::new(ReloadingCertResolver::empty());
    let service = ServiceName::new("podid-webhook", "podid-system");
    let policy = RotationPolicy::default();
    let manager = CertManager::new(
        cluster,
        clock.clone(),
        policy,
        service,
        Arc::clone(&resolver),
    );
    (manager, resolver)
}

fn leaf(resolver: &ReloadingCertResolver) -> Vec<u8> {
    resolver.current().unwrap().cert[0].to_vec()
}

#[tokio::test]
async fn first_pass_creates_the_secret_serves_it_and_publishes_its_bundle() {
    let clock = FakeClock::new(start());
    let cluster = MemoryCluster::new(3);
    let (mut manager, resolver) = manager(cluster.clone(), &clock);
    assert!(!resolver.is_loaded());
    let pass = manager.pass().await.unwrap();
    assert_eq!(pass.plan, Plan::Keep);
    assert!(pass.wrote && pass.published);
    let secret = cluster.secret().unwrap();
    assert_eq!(leaf(&resolver), secret.parse().unwrap().leaf().to_vec());
    assert_eq!(cluster.bundles(), vec![secret.ca_bundle.clone(); 3]);
    let again = manager.pass().await.unwrap();
    assert!(!again.wrote && !again.published, "{again:?}");
}

#[tokio::test]
async fn bundle_reset_by_an_upgrade_is_published_again_on_the_next_pass() {
    let clock = FakeClock::new(start());
    let cluster = MemoryCluster::new(1);
    let (mut manager, _) = manager(cluster.clone(), &clock);
    manager.pass().await.unwrap();
    cluster.reset_bundles();
    assert_eq!(cluster.bundles(), [Vec::<u8>::new()]);
    let pass = manager.pass().await.unwrap();
    assert!(pass.published && !pass.wrote);
    assert_eq!(cluster.bundles(), [cluster.secret().unwrap().ca_bundle]);
}

#[tokio::test]
async fn unusable_secret_is_replaced_by_a_fresh_one() {
    let clock = FakeClock::new(start());
    let cluster = MemoryCluster::new(1);
    cluster.create_secret(&SecretData::default()).await.unwrap();
    let (mut manager, resolver) = manager(cluster.clone(), &clock);
    let pass = manager.pass().await.unwrap();
    assert!(pass.wrote);
    assert!(resolver.is_loaded());
    assert!(cluster.secret().unwrap().parse().is_ok());
    assert_eq!(cluster.counts().replaces, 1);
}

#[tokio::test]
async fn replica_serves_what_another_replica_wrote() {
    let clock = FakeClock::new(start());
    let cluster = MemoryCluster::new(1);
    let (mut writer, writer_resolver) = manager(cluster.clone(), &clock);
    let (mut reader, reader_resolver) = manager(cluster.clone(), &clock);
    writer.pass().await.unwrap();
    reader.pass().await.unwrap();
    assert_eq!(leaf(&reader_resolver), leaf(&writer_resolver));
    clock.advance(250 * DAY);
    let renewed = writer.pass().await.unwrap();
    assert!(matches!(renewed.plan, Plan::RenewServing(_)) && renewed.wrote);
    let read = reader.pass().await.unwrap();
    assert!(!read.wrote, "{read:?}");
    assert_eq!(leaf(&reader_resolver), leaf(&writer_resolver));
}

#[tokio::test]
async fn without_a_webhook_configuration_the_serving_certificate_never_switches_ca() {
    let clock = FakeClock::new(start());
    let cluster = MemoryCluster::new(1);
    let (mut manager, resolver) = manager(cluster.clone(), &clock);
    manager.pass().await.unwrap();
    cluster.delete_webhook();
    // Renewals under the same CA need no publication; the CA's last year begins.
    for _ in 0..7 {
        clock.advance(200 * DAY);
        assert!(matches!(
            manager.pass().await.unwrap().plan,
            Plan::Keep | Plan::RenewServing(_)
        ));
    }
    clock.advance(61 * DAY);
    assert_eq!(manager.pass().await.unwrap().plan, Plan::StageCa);
    let served = leaf(&resolver);
    clock.advance(DAY);
    assert_eq!(manager.pass().await.unwrap().plan, Plan::AwaitPublication);
    assert_eq!(leaf(&resolver), served);
}

/// A cluster whose API server does not answer.
struct Down;

fn down() -> ClusterError {
    ClusterError::Api {
        step: "reading the Secret",
        source: "connection refused".into(),
    }
}

impl Cluster for Down {
    async fn get_secret(&self) -> Result<Option<Stored>, ClusterError> {
        Err(down())
    }
    async fn create_secret(&self, _: &SecretData) -> Result<Stored, ClusterError> {
        Err(down())
    }
    async fn replace_secret(&self, _: &SecretData, _: &str) -> Result<Stored, ClusterError> {
        Err(down())
    }
    async fn webhook_bundles(&self) -> Result<Published, ClusterError> {
        Err(down())
    }
    async fn publish_bundle(&self, _: &Published, _: &[u8]) -> Result<(), ClusterError> {
        Err(down())
    }
}

#[tokio::test]
async fn unreachable_api_server_fails_the_pass_and_serves_nothing_new() {
    let clock = FakeClock::new(start());
    let (mut manager, resolver) = manager(Down, &clock);
    let err = manager.pass().await.unwrap_err();
    assert!(
        matches!(err, ManageError::Cluster(ClusterError::Api { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(!resolver.is_loaded());
}

#[tokio::test]
async fn run_loads_a_certificate_and_stops_on_shutdown() {
    let clock = FakeClock::new(start());
    let cluster = MemoryCluster::new(1);
    let (manager, resolver) = manager(cluster, &clock);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(manager.run(Duration::from_millis(10), async {
        let _ = stopped.await;
    }));
    for _ in 0..500 {
        if resolver.is_loaded() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(resolver.is_loaded());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
