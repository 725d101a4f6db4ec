//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager): one replica acts, the others wait.

use std::time::Duration;

use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseParams};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Leader-election settings, as the flags give them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Namespace of the Lease (the release namespace).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease is valid after its last renewal; a standby takes over after it.
    pub lease_duration: Duration,
    /// The leader renews this long after its last renewal at the latest; a
    /// renewal that fails makes it stop acting at once.
    pub renew_deadline: Duration,
    /// Wait between attempts after a Lease API error.
    pub retry_period: Duration,
}

/// Why the settings cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseSettingsError {
    /// Whole seconds: the Lease counts in them.
    #[error("--leader-elect-lease-duration must be at least 2s (got {0:?})")]
    DurationTooShort(Duration),
    /// The renewal must come before the Lease runs out.
    #[error(
        "--leader-elect-renew-deadline ({renew:?}) must be at least 1s and at least 1s shorter than --leader-elect-lease-duration ({lease:?})"
    )]
    RenewDeadline {
        /// The renew deadline.
        renew: Duration,
        /// The lease duration.
        lease: Duration,
    },
    /// The identity names the holder.
    #[error("--leader-elect-identity must not be empty")]
    NoIdentity,
}

impl LeaseSettings {
    /// kube-lease-manager's `(duration, grace)` in seconds: the Lease duration
    /// rounded up, and the grace (renew this long before expiry) such that
    /// renewal happens `renew_deadline` after the last one, at the latest.
    pub fn seconds(&self) -> Result<(u64, u64), LeaseSettingsError> {
        if self.identity.trim().is_empty() {
            return Err(LeaseSettingsError::NoIdentity);
        }
        let duration = ceil_secs(self.lease_duration);
        if duration < 2 {
            return Err(LeaseSettingsError::DurationTooShort(self.lease_duration));
        }
        let renew = ceil_secs(self.renew_deadline);
        if renew == 0 || renew >= duration {
            return Err(LeaseSettingsError::RenewDeadline {
                renew: self.renew_deadline,
                lease: self.lease_duration,
            });
        }
        Ok((duration, duration - renew))
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Whether this replica leads, kept up to date by a background task.
///
/// # Guarantees
/// - `true` only after the Lease was written with this identity as holder.
/// - Any error renewing or reading the Lease while leading turns it `false`
///   at once (a leader that cannot confirm its Lease stops acting); the
///   Lease is then released, and leadership is contested afresh.
/// - [`Leadership::shutdown`] turns it `false` and releases the Lease, so a
///   standby takes over without waiting for the Lease to expire.
#[derive(Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Without election, the sender stays here so the value never "closes".
    _fixed: Option<watch::Sender<bool>>,
}

impl Leadership {
    /// No election: this replica always leads (`--leader-elect=false`).
    pub fn always() -> Self {
        let (tx, leading) = watch::channel(true);
        Self {
            leading,
            stop: None,
            task: None,
            _fixed: Some(tx),
        }
    }

    /// Starts contesting the Lease. Fails only on unusable settings; API errors are retried.
    pub fn start(
        client: kube::Client,
        settings: LeaseSettings,
    ) -> Result<Self, LeaseSettingsError> {
        let (duration, grace) = settings.seconds()?;
        let params = LeaseParams::new(settings.identity.clone(), duration, grace);
        let (tx, leading) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(contest(client, settings, params, tx, stopped));
        Ok(Self {
            leading,
            stop: Some(stop),
            task: Some(task),
            _fixed: None,
        })
    }

    /// Whether this replica leads now.
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// A receiver of leadership changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops contesting and releases the Lease if held (bounded by `timeout`).
    pub async fn shutdown(mut self, timeout: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && tokio::time::timeout(timeout, task).await.is_err()
        {
            warn!("releasing the Lease timed out; a standby takes over when it expires");
        }
    }
}

/// The election loop: create the manager, follow its changes until told to stop, release.
async fn contest(
    client: kube::Client,
    settings: LeaseSettings,
    params: LeaseParams,
    tx: watch::Sender<bool>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Some(manager) = create(client, &settings, params, &mut stopped).await else {
        return;
    };
    follow(&manager, &settings, &tx, &mut stopped).await;
    publish(&tx, false, &settings.identity);
    match manager.release().await {
        Ok(()) => info!(lease = %settings.name, "Lease released"),
        Err(error) => {
            warn!(lease = %settings.name, %error, "cannot release the Lease; it expires on its own")
        }
    }
}

/// Creates (or finds) the Lease, retrying API errors; `None` when stopped first.
async fn create(
    client: kube::Client,
    settings: &LeaseSettings,
    params: LeaseParams,
    stopped: &mut oneshot::Receiver<()>,
) -> Option<LeaseManager> {
    loop {
        let attempt = LeaseManager::new(
            client.clone(),
            settings.name.clone(),
            settings.namespace.clone(),
            params.clone(),
            LeaseCreateMode::AutoCreate,
        );
        tokio::select! {
            _ = &mut *stopped => return None,
            made = attempt => match made {
                Ok(manager) => return Some(manager),
                Err(error) => warn!(lease = %settings.name, %error, "cannot read or create the Lease; retrying"),
            },
        }
        if sleep_or_stop(settings.retry_period, stopped).await {
            return None;
        }
    }
}

/// Publishes every change of leadership until stopped.
async fn follow(
    manager: &LeaseManager,
    settings: &LeaseSettings,
    tx: &watch::Sender<bool>,
    stopped: &mut oneshot::Receiver<()>,
) {
    let (name, identity) = (&settings.name, &settings.identity);
    loop {
        let changed = tokio::select! {
            _ = &mut *stopped => return,
            changed = manager.changed() => changed,
        };
        match changed {
            Ok(leading) => publish(tx, leading, identity),
            Err(error) if *tx.borrow() => {
                warn!(lease = %name, %error, "cannot confirm the Lease; stepping down");
                publish(tx, false, identity);
                // The manager still believes it leads: release, so that its
                // next change reports the truth and the Lease is contested afresh.
                while let Err(error) = manager.release().await {
                    warn!(lease = %name, %error, "cannot release the Lease; retrying");
                    if sleep_or_stop(settings.retry_period, stopped).await {
                        return;
                    }
                }
            }
            Err(error) => {
                warn!(lease = %name, %error, "Lease API error; retrying");
                if sleep_or_stop(settings.retry_period, stopped).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps `period`; `true` if told to stop meanwhile.
async fn sleep_or_stop(period: Duration, stopped: &mut oneshot::Receiver<()>) -> bool {
    tokio::select! {
        _ = stopped => true,
        () = tokio::time::sleep(period) => false,
    }
}

fn publish(tx: &watch::Sender<bool>, leading: bool, identity: &str) {
    let was = tx.send_replace(leading);
    if was != leading {
        if leading {
            info!(%identity, "became the leader");
        } else {
            info!(%identity, "stopped leading");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lease: u64, renew: u64) -> LeaseSettings {
        LeaseSettings {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn the_chart_defaults_renew_five_seconds_before_expiry() {
        assert_eq!(settings(15, 10).seconds(), Ok((15, 5)));
    }

    #[test]
    fn a_renew_deadline_not_shorter_than_the_lease_is_refused() {
        assert!(settings(15, 15).seconds().is_err());
        assert!(settings(15, 0).seconds().is_err());
        assert!(settings(1, 0).seconds().is_err());
        let mut s = settings(15, 10);
        s.identity = " ".into();
        assert_eq!(s.seconds(), Err(LeaseSettingsError::NoIdentity));
    }

    #[tokio::test]
    async fn without_election_the_replica_always_leads() {
        let l = Leadership::always();
        assert!(l.is_leading());
        l.shutdown(Duration::from_secs(1)).await;
    }
}
