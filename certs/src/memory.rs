//! An in-memory [`Cluster`] with the API server's resourceVersion semantics (feature `test-support`).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Barrier;

use crate::manage::{Cluster, ClusterError, Published, Stored};
use crate::material::SecretData;

/// One Secret and one webhook configuration, shared by clones.
///
/// Every write bumps a cluster-wide resourceVersion, as etcd does; a create
/// of an existing Secret, a replace at an old version and a publish against
/// an old configuration are [`ClusterError::Conflict`].
#[derive(Clone)]
pub struct MemoryCluster {
    state: Arc<Mutex<State>>,
    gate: Arc<Gate>,
}

/// What happened, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Successful creates of the Secret.
    pub creates: usize,
    /// Successful replaces of the Secret.
    pub replaces: usize,
    /// Successful publishes of the bundle.
    pub publishes: usize,
    /// Writes refused for a stale version or an existing object.
    pub conflicts: usize,
}

#[derive(Default)]
struct State {
    version: u64,
    secret: Option<(SecretData, u64)>,
    webhook: Option<(Vec<Vec<u8>>, u64)>,
    counts: Counts,
}

/// Holds the first `held` Secret reads until all of them have arrived, so
/// that replicas decide on the same version and race to write.
struct Gate {
    held: usize,
    arrived: AtomicUsize,
    barrier: Barrier,
}

// === impl MemoryCluster ===

impl MemoryCluster {
    /// No Secret yet; a webhook configuration with `entries` webhooks and no `caBundle`.
    pub fn new(entries: usize) -> Self {
        let state = State {
            version: 1,
            webhook: Some((vec![Vec::new(); entries], 1)),
            ..State::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            gate: Arc::new(Gate {
                held: 0,
                arrived: AtomicUsize::new(0),
                barrier: Barrier::new(1),
            }),
        }
    }

    /// Holds the first `replicas` Secret reads until all have arrived.
    pub fn racing(self, replicas: usize) -> Self {
        Self {
            gate: Arc::new(Gate {
                held: replicas,
                arrived: AtomicUsize::new(0),
                barrier: Barrier::new(replicas),
            }),
            ..self
        }
    }

    /// The Secret's data, if it exists.
    pub fn secret(&self) -> Option<SecretData> {
        self.lock().secret.as_ref().map(|(data, _)| data.clone())
    }

    /// The `caBundle` of every webhook entry (empty without a configuration).
    pub fn bundles(&self) -> Vec<Vec<u8>> {
        self.lock()
            .webhook
            .as_ref()
            .map(|(bundles, _)| bundles.clone())
            .unwrap_or_default()
    }

    /// Clears every `caBundle`, as a careless `kubectl apply` of the configuration would.
    pub fn reset_bundles(&self) {
        let mut state = self.lock();
        state.version += 1;
        let version = state.version;
        if let Some((bundles, rv)) = state.webhook.as_mut() {
            bundles.iter_mut().for_each(Vec::clear);
            *rv = version;
        }
    }

    /// Deletes the webhook configuration.
    pub fn delete_webhook(&self) {
        self.lock().webhook = None;
    }

    /// What happened so far.
    pub fn counts(&self) -> Counts {
        self.lock().counts.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conflict(&self, what: &'static str) -> ClusterError {
        self.lock().counts.conflicts += 1;
        ClusterError::Conflict { what }
    }
}

impl Cluster for MemoryCluster {
    async fn get_secret(&self) -> Result<Option<Stored>, ClusterError> {
        let stored = self.lock().secret.as_ref().map(|(data, rv)| Stored {
            data: data.clone(),
            resource_version: rv.to_string(),
        });
        if self.gate.arrived.fetch_add(1, Ordering::SeqCst) < self.gate.held {
            self.gate.barrier.wait().await;
        }
        Ok(stored)
    }

    async fn create_secret(&self, data: &SecretData) -> Result<Stored, ClusterError> {
        let mut state = self.lock();
        if state.secret.is_some() {
            drop(state);
            return Err(self.conflict("Secret"));
        }
        state.version += 1;
        let version = state.version;
        state.secret = Some((data.clone(), version));
        state.counts.creates += 1;
        Ok(Stored {
            data: data.clone(),
            resource_version: version.to_string(),
        })
    }

    async fn replace_secret(
        &self,
        data: &SecretData,
        resource_version: &str,
    ) -> Result<Stored, ClusterError> {
        let mut state = self.lock();
        let current = state.secret.as_ref().map(|(_, rv)| rv.to_string());
        match current {
            None => return Err(ClusterError::NotFound { what: "Secret" }),
            Some(rv) if rv != resource_version => {
                drop(state);
                return Err(self.conflict("Secret"));
            }
            Some(_) => {}
        }
        state.version += 1;
        let version = state.version;
        state.secret = Some((data.clone(), version));
        state.counts.replaces += 1;
        Ok(Stored {
            data: data.clone(),
            resource_version: version.to_string(),
        })
    }

    async fn webhook_bundles(&self) -> Result<Published, ClusterError> {
        let state = self.lock();
        let (bundles, rv) = state.webhook.as_ref().ok_or(ClusterError::NotFound {
            what: "MutatingWebhookConfiguration",
        })?;
        Ok(Published {
            resource_version: rv.to_string(),
            bundles: bundles.clone(),
        })
    }

    async fn publish_bundle(&self, current: &Published, bundle: &[u8]) -> Result<(), ClusterError> {
        let mut state = self.lock();
        state.version += 1;
        let version = state.version;
        let Some((bundles, rv)) = state.webhook.as_mut() else {
            return Err(ClusterError::NotFound {
                what: "MutatingWebhookConfiguration",
            });
        };
        if rv.to_string() != current.resource_version {
            drop(state);
            return Err(self.conflict("MutatingWebhookConfiguration"));
        }
        bundles.iter_mut().for_each(|b| *b = bundle.to_vec());
        *rv = version;
        state.counts.publishes += 1;
        Ok(())
    }
}

impl fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCluster")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}
