//! Polling the certificate and key files and swapping in a new pair when it changes.
//!
//! Polling rather than inotify: Kubernetes updates a Secret volume by
//! re-pointing the `..data` symlink, which an inotify watch on `tls.crt`
//! itself never sees. Reading two small files once a second costs nothing.

use std::future::Future;
use std::hash::{DefaultHasher, Hasher};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::inspect::summarize;
use crate::load::{CertError, certified_key_from_pem};
use crate::resolver::ReloadingCertResolver;

/// How often the files are read unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest interval honoured; a zero interval would spin.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// What one look at the files found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files hold the same bytes as at the previous look.
    Unchanged,
    /// The files changed but hold the certificate already being served.
    AlreadyServing,
    /// A new certificate was loaded and is served from the next handshake on.
    Loaded,
}

/// Keeps a [`ReloadingCertResolver`] in step with a certificate and key file.
///
/// # Guarantees
///
/// - A pair that fails to load (missing, half-written, key of another
///   certificate) never replaces the certificate being served; it is
///   retried as soon as either file changes.
/// - Each distinct failure is logged once at `warn`, not on every tick.
/// - Key material is never logged.
#[derive(Debug)]
pub struct FileWatcher {
    resolver: Arc<ReloadingCertResolver>,
    cert_path: PathBuf,
    key_path: PathBuf,
    interval: Duration,
    /// Fingerprint of the bytes last parsed, so unchanged files are not
    /// re-parsed; a hash rather than the bytes, to hold no second key copy.
    seen: Option<u64>,
    last_failure: Option<String>,
}

/// Runs a [`FileWatcher`] with `interval` until `shutdown` completes.
///
/// The first look is immediate, so an empty resolver becomes ready as soon
/// as the files are readable.
pub async fn watch_files(
    resolver: Arc<ReloadingCertResolver>,
    cert_path: impl Into<PathBuf>,
    key_path: impl Into<PathBuf>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    FileWatcher::new(resolver, cert_path, key_path)
        .with_interval(interval)
        .run(shutdown)
        .await;
}

// === impl FileWatcher ===

impl FileWatcher {
    /// A watcher polling every [`DEFAULT_POLL_INTERVAL`].
    pub fn new(
        resolver: Arc<ReloadingCertResolver>,
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            resolver,
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            interval: DEFAULT_POLL_INTERVAL,
            seen: None,
            last_failure: None,
        }
    }

    /// Polls every `interval`, but never more often than [`MIN_POLL_INTERVAL`].
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(MIN_POLL_INTERVAL);
        self
    }

    /// Looks at the files until `shutdown` completes, logging what it finds.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.interval);
        // After a stall (suspended node, starved runtime) one look is enough.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut shutdown = pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => self.check_and_log().await,
            }
        }
        debug!(cert = %self.cert_path.display(), "certificate watcher stopped");
    }

    /// Looks at the files once and swaps in a new certificate if they hold one.
    ///
    /// On error the resolver keeps what it had; the same bytes are not parsed
    /// again, so the next change to either file is the retry.
    pub async fn check(&mut self) -> Result<Reload, CertError> {
        let cert_pem =
            tokio::fs::read(&self.cert_path)
                .await
                .map_err(|source| CertError::ReadCert {
                    path: self.cert_path.clone(),
                    source,
                })?;
        let key_pem =
            tokio::fs::read(&self.key_path)
                .await
                .map_err(|source| CertError::ReadKey {
                    path: self.key_path.clone(),
                    source,
                })?;
        let fingerprint = fingerprint(&cert_pem, &key_pem);
        if self.seen == Some(fingerprint) {
            return Ok(Reload::Unchanged);
        }
        self.seen = Some(fingerprint);
        let key = certified_key_from_pem(&self.cert_path, &cert_pem, &self.key_path, &key_pem)?;
        // A matching key follows from a matching leaf (the pair was checked),
        // so comparing chains is enough to recognise what is already served.
        if self
            .resolver
            .current()
            .is_some_and(|current| current.cert == key.cert)
        {
            return Ok(Reload::AlreadyServing);
        }
        self.log_loaded(&key);
        self.resolver.set(key);
        Ok(Reload::Loaded)
    }

    async fn check_and_log(&mut self) {
        match self.check().await {
            // `Loaded` was logged at info by `check`.
            Ok(Reload::Unchanged | Reload::Loaded) => {}
            Ok(Reload::AlreadyServing) => {
                let cert = self.cert_path.display();
                debug!(%cert, "certificate files changed; same certificate, nothing to swap");
            }
            Err(err) => {
                let message = err.to_string();
                if self.last_failure.as_ref() != Some(&message) {
                    self.log_failure(&err);
                }
                self.last_failure = Some(message);
                return;
            }
        }
        self.last_failure = None;
    }

    fn log_loaded(&self, key: &CertifiedKey) {
        let cert = self.cert_path.display();
        match key.cert.first().and_then(summarize) {
            Some(summary) => info!(
                %cert,
                not_after = %summary.not_after,
                dns_names = ?summary.dns_names,
                chain_len = key.cert.len(),
                "loaded serving certificate"
            ),
            None => info!(%cert, chain_len = key.cert.len(), "loaded serving certificate"),
        }
    }

    fn log_failure(&self, err: &CertError) {
        let (cert, key) = (self.cert_path.display(), self.key_path.display());
        let kind = err.kind();
        if self.resolver.is_loaded() {
            warn!(%cert, %key, error = %err, kind,
                "cannot load changed certificate files; still serving the previous \
                 certificate, will retry when they change");
        } else {
            warn!(%cert, %key, error = %err, kind,
                "cannot load certificate files; not ready until they load, \
                 will retry when they change");
        }
    }
}

fn fingerprint(cert_pem: &[u8], key_pem: &[u8]) -> u64 {
    // Change detection only: whoever can write these files can already
    // choose the certificate, so collision resistance buys nothing.
    let mut hasher = DefaultHasher::new();
    hasher.write(cert_pem);
    hasher.write_u8(0xff);
    hasher.write(key_pem);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::testca::TestCa;

    const SAN: &str = "podid-webhook.podid-system.svc";

    struct Setup {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
        resolver: Arc<ReloadingCertResolver>,
        watcher: FileWatcher,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let resolver = Arc::new(ReloadingCertResolver::empty());
        let watcher = FileWatcher::new(resolver.clone(), &cert, &key);
        Setup {
            _dir: dir,
            cert,
            key,
            resolver,
            watcher,
        }
    }

    fn served_leaf(resolver: &ReloadingCertResolver) -> Vec<u8> {
        resolver.current().unwrap().cert[0].to_vec()
    }

    fn leaf_der(cert_pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn missing_files_leave_the_resolver_empty() {
        let mut s = setup();
        assert!(matches!(
            s.watcher.check().await,
            Err(CertError::ReadCert { .. })
        ));
        assert!(!s.resolver.is_loaded());
    }

    #[tokio::test]
    async fn new_pair_is_loaded_once_then_unchanged() {
        let mut s = setup();
        let (cert, key) = TestCa::new().leaf(&[SAN]);
        std::fs::write(&s.cert, &cert).unwrap();
        std::fs::write(&s.key, &key).unwrap();

        assert_eq!(s.watcher.check().await.unwrap(), Reload::Loaded);
        assert_eq!(served_leaf(&s.resolver), leaf_der(&cert));
        assert_eq!(s.watcher.check().await.unwrap(), Reload::Unchanged);
        // Rewritten with the same bytes (a Secret resync): nothing to do.
        std::fs::write(&s.cert, &cert).unwrap();
        assert_eq!(s.watcher.check().await.unwrap(), Reload::Unchanged);
    }

    #[tokio::test]
    async fn certificate_loaded_at_startup_is_recognised_as_already_serving() {
        let mut s = setup();
        let (cert, key) = TestCa::new().leaf(&[SAN]);
        std::fs::write(&s.cert, &cert).unwrap();
        std::fs::write(&s.key, &key).unwrap();
        s.resolver
            .set(crate::load_pem_files(&s.cert, &s.key).unwrap());

        assert_eq!(s.watcher.check().await.unwrap(), Reload::AlreadyServing);
    }

    #[tokio::test]
    async fn half_written_pair_keeps_the_old_certificate_until_the_key_arrives() {
        let mut s = setup();
        let (old_cert, old_key) = TestCa::new().leaf(&[SAN]);
        let (new_cert, new_key) = TestCa::new().leaf(&[SAN]);
        std::fs::write(&s.cert, &old_cert).unwrap();
        std::fs::write(&s.key, &old_key).unwrap();
        s.watcher.check().await.unwrap();

        std::fs::write(&s.cert, &new_cert).unwrap();
        let err = s.watcher.check().await.unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err:?}");
        assert_eq!(served_leaf(&s.resolver), leaf_der(&old_cert));
        // Same bytes again: not re-parsed, not re-reported.
        assert_eq!(s.watcher.check().await.unwrap(), Reload::Unchanged);

        std::fs::write(&s.key, &new_key).unwrap();
        assert_eq!(s.watcher.check().await.unwrap(), Reload::Loaded);
        assert_eq!(served_leaf(&s.resolver), leaf_der(&new_cert));
    }

    #[tokio::test]
    async fn deleted_files_keep_the_old_certificate() {
        let mut s = setup();
        let (cert, key) = TestCa::new().leaf(&[SAN]);
        std::fs::write(&s.cert, &cert).unwrap();
        std::fs::write(&s.key, &key).unwrap();
        s.watcher.check().await.unwrap();

        std::fs::remove_file(&s.key).unwrap();
        assert!(matches!(
            s.watcher.check().await,
            Err(CertError::ReadKey { .. })
        ));
        assert_eq!(served_leaf(&s.resolver), leaf_der(&cert));
    }

    #[test]
    fn zero_interval_is_raised_to_the_minimum() {
        let s = setup();
        let watcher = s.watcher.with_interval(Duration::ZERO);
        assert_eq!(watcher.interval, MIN_POLL_INTERVAL);
    }

    #[tokio::test]
    async fn run_returns_when_shutdown_completes() {
        let s = setup();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            s.watcher
                .with_interval(Duration::from_millis(10))
                .run(async {
                    let _ = rx.await;
                }),
        );
        tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("watcher did not stop")
            .unwrap();
    }
}
