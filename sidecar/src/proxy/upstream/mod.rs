//! Where tokens come from: IMDS for managed identities, Azure AD for service principals and federated identities, with retries.

pub mod aad;
pub mod client;
pub mod credential;
pub mod error;
pub mod imds;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use podid_core::proxy_config::ProxyIdentity;
use tracing::{info, warn};

pub use self::aad::{AuthorityError, ServicePrincipal};
use self::client::Tls;
pub use self::error::UpstreamError;
pub use self::imds::Imds;
use super::cache::{Fetcher, Key};
use super::metrics::Metrics;
use super::retry::{self, RetryPolicy};
use super::token::Token;

/// One identity the proxy serves, and how its tokens are fetched.
#[derive(Debug)]
pub struct Identity {
    /// As configured.
    pub config: ProxyIdentity,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Imds,
    Aad(ServicePrincipal),
}

impl Identity {
    /// The identity of `config`; service principals get their token endpoint checked here.
    pub fn new(config: ProxyIdentity, default_authority: &str) -> Result<Self, AuthorityError> {
        let source = if config.uses_entra() {
            Source::Aad(ServicePrincipal::new(&config, default_authority)?)
        } else {
            Source::Imds
        };
        Ok(Self { config, source })
    }

    /// Whether tokens come from Azure AD (and so need TLS).
    pub fn uses_aad(&self) -> bool {
        matches!(self.source, Source::Aad(_))
    }
}

/// The upstreams of one proxy: fetches tokens for its identities, learning their object ids.
#[derive(Debug)]
pub struct Upstream {
    identities: Arc<[Identity]>,
    imds: Imds,
    tls: Option<Tls>,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
    object_ids: Mutex<Vec<Option<String>>>,
}

impl Upstream {
    /// Upstreams for `identities`; `tls` is needed only when a service principal is among them.
    pub fn new(
        identities: Arc<[Identity]>,
        imds: Imds,
        tls: Option<Tls>,
        policy: RetryPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let object_ids = Mutex::new(vec![None; identities.len()]);
        Self {
            identities,
            imds,
            tls,
            policy,
            metrics,
            object_ids,
        }
    }

    /// The object id of identity `index`, once a token for it was seen.
    pub fn object_id(&self, index: usize) -> Option<String> {
        let ids = self
            .object_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ids.get(index).cloned().flatten()
    }

    fn learn(&self, index: usize, token: &Token) {
        let mut ids = self
            .object_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let (Some(slot), Some(oid)) = (ids.get_mut(index), &token.object_id) {
            *slot = Some(oid.clone());
        }
    }

    /// One attempt, observed in the metrics (a timed-out attempt is dropped
    /// mid-flight; the guard still counts it).
    async fn attempt(&self, identity: &Identity, resource: &str) -> Result<Token, UpstreamError> {
        let mut observed = Observed {
            metrics: &self.metrics,
            kind: "imds_token",
            started: Instant::now(),
            class: None,
        };
        let outcome = match &identity.source {
            Source::Imds => self.imds.token(&identity.config.client_id, resource).await,
            Source::Aad(sp) => {
                observed.kind = "aad_token";
                match &self.tls {
                    Some(tls) => sp.token(tls, resource).await,
                    None => Err(UpstreamError::Credential("no TLS configuration".into())),
                }
            }
        };
        observed.class = Some(
            outcome
                .as_ref()
                .map_or_else(UpstreamError::class, |_| "2xx"),
        );
        outcome
    }
}

impl Fetcher for Upstream {
    type Error = UpstreamError;

    async fn fetch(&self, key: &Key) -> Result<Token, UpstreamError> {
        let Some(identity) = self.identities.get(key.identity) else {
            return Err(UpstreamError::Credential(format!(
                "no identity #{}",
                key.identity
            )));
        };
        let started = Instant::now();
        let (outcome, attempts) =
            retry::run(&self.policy, || self.attempt(identity, &key.resource)).await;
        let (name, resource, ms) = (
            &identity.config.name,
            &key.resource,
            started.elapsed().as_millis(),
        );
        match &outcome {
            Ok(token) => {
                self.learn(key.identity, token);
                info!(identity = %name, %resource, attempts, ms, expires_on = token.expires_on, "token fetched");
            }
            Err(error) => {
                warn!(identity = %name, %resource, attempts, ms, %error, "token fetch failed")
            }
        }
        outcome
    }
}

/// Counts an upstream call when dropped: with its class, or as a timeout if it never finished.
struct Observed<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    started: Instant,
    class: Option<&'static str>,
}

impl Drop for Observed<'_> {
    fn drop(&mut self) {
        let class = self.class.unwrap_or("timeout");
        self.metrics
            .upstream(self.kind, class, self.started.elapsed());
    }
}
