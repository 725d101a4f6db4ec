//! The self-managed certificate loop: read the Secret, serve it, publish its bundle, write what is due.
//!
//! Every replica runs the same loop against the same Secret. Writes carry the
//! resourceVersion they were decided on, so when two replicas decide at once
//! one write wins, the other gets a conflict, re-reads and adopts the winner's
//! certificates: there is never more than one CA being introduced, and all
//! replicas serve what the Secret holds.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::issue::{IssueError, ServiceName};
use crate::material::{Material, SecretData, parse_bundle};
use crate::resolver::ReloadingCertResolver;
use crate::rotation::{Plan, RotationPolicy, apply, fresh, plan};

/// How many times one pass re-reads after losing a write race.
const MAX_ATTEMPTS: usize = 4;

/// The longest wait before retrying a failed pass while nothing is served.
pub const RETRY_UNSERVED: Duration = Duration::from_secs(2);

/// The Secret as stored, with the version a write must name.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Its data.
    pub data: SecretData,
    /// Its `metadata.resourceVersion`.
    pub resource_version: String,
}

/// The webhook configuration's `caBundle`s as read, one per webhook entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// The configuration's `metadata.resourceVersion`.
    pub resource_version: String,
    /// Each entry's `clientConfig.caBundle` (PEM, empty if unset).
    pub bundles: Vec<Vec<u8>>,
}

/// Why a call to the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The object changed (or appeared) since it was read: re-read.
    #[error("{what} was changed by someone else since it was read")]
    Conflict {
        /// The object.
        what: &'static str,
    },
    /// The object does not exist.
    #[error("{what} not found")]
    NotFound {
        /// The object.
        what: &'static str,
    },
    /// Any other failure of the step named.
    #[error("{step}: {source}")]
    Api {
        /// What was being done.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// Where the certificate Secret lives and its bundle is published: the cluster, or a fake.
///
/// Implementations report a failed resourceVersion precondition (HTTP 409,
/// or an existing object on create) as [`ClusterError::Conflict`].
pub trait Cluster: Send + Sync {
    /// The Secret, or `None` if it does not exist.
    fn get_secret(&self) -> impl Future<Output = Result<Option<Stored>, ClusterError>> + Send;
    /// Creates the Secret; `Conflict` if it exists.
    fn create_secret(
        &self,
        data: &SecretData,
    ) -> impl Future<Output = Result<Stored, ClusterError>> + Send;
    /// Replaces the Secret's data if it is still at `resource_version`.
    fn replace_secret(
        &self,
        data: &SecretData,
        resource_version: &str,
    ) -> impl Future<Output = Result<Stored, ClusterError>> + Send;
    /// The webhook configuration's bundles.
    fn webhook_bundles(&self) -> impl Future<Output = Result<Published, ClusterError>> + Send;
    /// Sets every entry's `caBundle` to `bundle`, if the configuration is still as `current`.
    fn publish_bundle(
        &self,
        current: &Published,
        bundle: &[u8],
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
}

/// Why a pass of the loop failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// Reading or writing the Secret failed.
    #[error("certificate Secret: {0}")]
    Cluster(#[from] ClusterError),
    /// A certificate could not be issued.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// Certificates just issued do not load: a bug, not an input problem.
    #[error("certificates just issued do not load: {0}")]
    Issued(#[source] crate::material::MaterialError),
    /// Other replicas kept winning the write race.
    #[error("the certificate Secret kept changing under this replica ({MAX_ATTEMPTS} attempts)")]
    Contended,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// The decision on the Secret as read (after any creation).
    pub plan: Plan,
    /// Whether this replica wrote the Secret (created, replaced or repaired it).
    pub wrote: bool,
    /// Whether this replica wrote the webhook configuration's bundle.
    pub published: bool,
}

/// Keeps one replica's serving certificate, the Secret and the published bundle in step.
pub struct CertManager<C, K> {
    cluster: C,
    clock: K,
    policy: RotationPolicy,
    service: ServiceName,
    resolver: Arc<ReloadingCertResolver>,
    /// The leaf being served, to load and log only changes.
    served: Option<CertificateDer<'static>>,
}

// === impl CertManager ===

impl<C: Cluster, K: Clock> CertManager<C, K> {
    /// A manager serving into `resolver` the certificate for `service`.
    pub fn new(
        cluster: C,
        clock: K,
        policy: RotationPolicy,
        service: ServiceName,
        resolver: Arc<ReloadingCertResolver>,
    ) -> Self {
        Self {
            cluster,
            clock,
            policy,
            service,
            resolver,
            served: None,
        }
    }

    /// Passes every `interval` until `shutdown` completes; the first is immediate.
    ///
    /// A failed pass is logged and retried; the certificate being served
    /// stays. Until a certificate is served (readiness waits for it), a failed
    /// pass is retried after at most [`RETRY_UNSERVED`]. Shutdown does not
    /// wait for a pass in flight.
    pub async fn run(mut self, interval: Duration, shutdown: impl Future<Output = ()>) {
        let interval = interval.max(Duration::from_millis(10));
        let mut shutdown = pin!(shutdown);
        loop {
            let ok = tokio::select! {
                () = &mut shutdown => break,
                ok = self.pass_and_log() => ok,
            };
            let delay = match (ok, self.served.is_some()) {
                (false, false) => interval.min(RETRY_UNSERVED),
                _ => interval,
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        debug!("certificate manager stopped");
    }

    async fn pass_and_log(&mut self) -> bool {
        match self.pass().await {
            Ok(pass) if pass.plan.writes() || pass.wrote || pass.published => {
                let (plan, wrote, published) = (pass.plan.kind(), pass.wrote, pass.published);
                info!(plan, wrote, published, service = %self.service, "certificate pass");
                true
            }
            Ok(pass) => {
                debug!(plan = pass.plan.kind(), "certificate pass");
                true
            }
            Err(error) => {
                warn!(%error, service = %self.service, "certificate pass failed; retrying");
                false
            }
        }
    }

    /// One pass: read (or create) the Secret, serve it, publish its bundle,
    /// and write what the rotation policy says is due.
    pub async fn pass(&mut self) -> Result<Pass, ManageError> {
        let (mut wrote, mut published) = (false, false);
        for _ in 0..MAX_ATTEMPTS {
            let Some((stored, material, created)) = self.read_or_create().await? else {
                continue;
            };
            wrote |= created;
            self.serve(&material);
            let (ca_published, wrote_bundle) = self.publish(&material).await;
            published |= wrote_bundle;
            let now = self.clock.now();
            let decided = plan(&self.policy, &self.service, now, &material, ca_published);
            let Some(data) = apply(decided, &self.policy, &self.service, now, &material)? else {
                return Ok(Pass {
                    plan: decided,
                    wrote,
                    published,
                });
            };
            match self
                .cluster
                .replace_secret(&data, &stored.resource_version)
                .await
            {
                Ok(stored) => {
                    let material = stored.data.parse().map_err(ManageError::Issued)?;
                    self.serve(&material);
                    published |= self.publish(&material).await.1;
                    return Ok(Pass {
                        plan: decided,
                        wrote: true,
                        published,
                    });
                }
                Err(ClusterError::Conflict { .. }) => debug!("lost a write race; re-reading"),
                Err(error) => return Err(error.into()),
            }
        }
        Err(ManageError::Contended)
    }

    /// The Secret and its checked contents; an absent or unusable Secret is
    /// replaced by a fresh one. `None`: lost a race, re-read.
    async fn read_or_create(&self) -> Result<Option<(Stored, Material, bool)>, ManageError> {
        let existing = self.cluster.get_secret().await?;
        if let Some(stored) = &existing {
            match stored.data.parse() {
                Ok(material) => return Ok(Some((stored.clone(), material, false))),
                Err(error) => warn!(%error, "the certificate Secret is unusable; issuing a new CA"),
            }
        }
        let data = fresh(&self.policy, &self.service, self.clock.now())?;
        let written = match &existing {
            None => self.cluster.create_secret(&data).await,
            Some(stored) => {
                self.cluster
                    .replace_secret(&data, &stored.resource_version)
                    .await
            }
        };
        match written {
            Ok(stored) => {
                info!(service = %self.service, "issued a new CA and serving certificate");
                let material = stored.data.parse().map_err(ManageError::Issued)?;
                Ok(Some((stored, material, true)))
            }
            Err(ClusterError::Conflict { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn serve(&mut self, material: &Material) {
        if self.served.as_ref() == Some(material.leaf()) {
            return;
        }
        self.resolver.set(material.serving.clone());
        self.served = Some(material.leaf().clone());
        let not_after = crate::inspect::summarize(material.leaf()).map(|s| s.not_after.to_string());
        info!(service = %self.service, not_after = not_after.as_deref().unwrap_or("?"), "serving certificate loaded");
    }

    /// Publishes the Secret's bundle where it differs. Returns whether every
    /// entry already trusted the signing CA when read, and whether it wrote.
    async fn publish(&self, material: &Material) -> (bool, bool) {
        let current = match self.cluster.webhook_bundles().await {
            Ok(current) => current,
            Err(error) => {
                warn!(%error, "cannot read the webhook configuration's caBundle");
                return (false, false);
            }
        };
        let ca_published = current.bundles.iter().all(|pem| {
            parse_bundle(pem).is_some_and(|cas| cas.iter().any(|c| c.der == material.ca.der))
        });
        let bundle = &material.data.ca_bundle;
        if current.bundles.iter().all(|pem| pem == bundle) {
            return (ca_published, false);
        }
        match self.cluster.publish_bundle(&current, bundle).await {
            Ok(()) => {
                info!(entries = current.bundles.len(), "published the caBundle");
                (ca_published, true)
            }
            Err(error) => {
                warn!(%error, "cannot publish the caBundle; retrying at the next pass");
                (ca_published, false)
            }
        }
    }
}

impl<C, K> std::fmt::Debug for CertManager<C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("service", &self.service)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
