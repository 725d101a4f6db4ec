//! The ARM client: `GET` and `PATCH` of VM and scale-set identities over HTTPS with bearer tokens, operations followed to their end.
//!
//! ```text
//! ArmClient::new(ArmClientConfig { endpoint, roots, .. }, tokens)?   // tokens: impl TokenSource
//!     .with_metrics(metrics.arm.clone())
//! ```
//!
//! It implements [`crate::seams::Arm`]: answers become [`ArmError`]s by
//! status and ARM error code ([`answer`]); a PATCH is followed through
//! `Azure-AsyncOperation`, then `Location`, then the resource itself
//! (`lro.rs`), polling at the server's `Retry-After` or the configured
//! interval, within an overall timeout. Bearer tokens are sent only to the
//! configured endpoint's origin, including operation URLs ARM hands back.

pub mod answer;
mod lro;
mod token;
mod transport;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Uri};
use serde_json::Value;
use tokio::time::Instant;

use self::answer::{Answer, classify};
use self::lro::{Monitor, Schedule};
pub use self::token::{StaticToken, TokenError, TokenSource};
use self::transport::Transport;
pub use self::transport::{TransportError, TrustRoots, roots_from_pem};
use crate::metrics::ArmMetrics;
use crate::plan::{AssignedIdentities, PatchRequest, Target};
use crate::seams::{Arm, ArmError};

/// ARM in Azure's public cloud.
pub const PUBLIC_CLOUD_ENDPOINT: &str = "https://management.azure.com";
/// api-version of `Microsoft.Compute/virtualMachines` requests.
pub const VM_API_VERSION: &str = "2024-07-01";
/// api-version of `Microsoft.Compute/virtualMachineScaleSets` requests.
pub const VMSS_API_VERSION: &str = "2024-07-01";

/// Where ARM is and how patiently to talk to it.
#[derive(Clone, Debug)]
pub struct ArmClientConfig {
    /// Base URL, `https://management.azure.com` (other clouds, stand-ins: theirs).
    pub endpoint: String,
    /// api-version for VMs.
    pub vm_api_version: String,
    /// api-version for scale sets.
    pub vmss_api_version: String,
    /// Trusted certificate authorities.
    pub roots: TrustRoots,
    /// Connecting (TCP and TLS) may take this long.
    pub connect_timeout: Duration,
    /// One request, answer read whole, may take this long.
    pub request_timeout: Duration,
    /// Between operation polls when ARM sends no `Retry-After`.
    pub poll_interval: Duration,
    /// A long-running operation may take this long before its outcome is called unknown.
    pub operation_timeout: Duration,
    /// The wait after a 429 without `Retry-After`.
    pub default_retry_after: Duration,
}

impl Default for ArmClientConfig {
    fn default() -> Self {
        Self {
            endpoint: PUBLIC_CLOUD_ENDPOINT.into(),
            vm_api_version: VM_API_VERSION.into(),
            vmss_api_version: VMSS_API_VERSION.into(),
            roots: TrustRoots::Native,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            // A VM takes 10–20 s, a scale set 35–60 s: a few polls each.
            poll_interval: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15 * 60),
            default_retry_after: Duration::from_secs(15),
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ArmClientError {
    /// The endpoint is not an `https://host[:port]` URL.
    #[error("ARM endpoint {0:?} is not an https:// URL")]
    Endpoint(String),
    /// The HTTPS client could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// The ARM client (see the module docs).
#[derive(Debug)]
pub struct ArmClient<T> {
    transport: Transport,
    tokens: T,
    config: ArmClientConfig,
    origin: Origin,
    metrics: ArmMetrics,
}

impl<T: TokenSource> ArmClient<T> {
    /// A client for `config.endpoint`, authenticating with `tokens`.
    pub fn new(mut config: ArmClientConfig, tokens: T) -> Result<Self, ArmClientError> {
        config.endpoint = config.endpoint.trim_end_matches('/').to_owned();
        let origin = Origin::of(&config.endpoint)
            .filter(|o| o.scheme == "https")
            .ok_or_else(|| ArmClientError::Endpoint(config.endpoint.clone()))?;
        let transport = Transport::new(
            &config.roots,
            config.connect_timeout,
            config.request_timeout,
        )?;
        Ok(Self {
            transport,
            tokens,
            config,
            origin,
            metrics: ArmMetrics::default(),
        })
    }

    /// Counts calls, throttles and operations in `metrics`.
    pub fn with_metrics(mut self, metrics: ArmMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// `{endpoint}{target id}?api-version=…`.
    pub fn resource_url(&self, target: &Target) -> String {
        let version = match target {
            Target::Vm { .. } => &self.config.vm_api_version,
            Target::Vmss { .. } => &self.config.vmss_api_version,
        };
        format!(
            "{}{}?api-version={version}",
            self.config.endpoint,
            target.arm_id()
        )
    }

    /// One authenticated request, counted.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<Answer, ArmError> {
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| ArmError::Unauthorized(e.to_string()))?;
        let result = self.transport.send(method, url, &token, body).await;
        self.metrics
            .call(operation, result.as_ref().ok().map(|a| a.status));
        if let Ok(a) = &result
            && a.status == 429
        {
            self.metrics.throttled(operation);
        }
        result
    }

    /// Polls `monitor` until the operation ends.
    async fn follow(&self, monitor: &Monitor, first: Option<Duration>) -> Result<(), ArmError> {
        if !self.origin.serves(monitor.url()) {
            // Never hand our token to another host, whatever a header says.
            return Err(ArmError::Unexpected(format!(
                "operation URL {} is not on {}",
                monitor.url(),
                self.config.endpoint
            )));
        }
        let _running = self.metrics.operation_started();
        let schedule = Schedule {
            first: first.unwrap_or(self.config.poll_interval),
            interval: self.config.poll_interval,
            deadline: Instant::now() + self.config.operation_timeout,
        };
        lro::follow(monitor, schedule, || {
            self.call("poll", Method::GET, monitor.url(), None)
        })
        .await
    }
}

impl<T: TokenSource> Arm for ArmClient<T> {
    async fn get_identity(&self, target: &Target) -> Result<AssignedIdentities, ArmError> {
        let url = self.resource_url(target);
        let answer = self.call("get", Method::GET, &url, None).await?;
        if !answer.is_success() {
            return Err(classify(&answer, self.config.default_retry_after));
        }
        let body = answer.json();
        let state = body
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str);
        if state.is_some_and(|s| s.eq_ignore_ascii_case("deleting")) {
            return Err(ArmError::TargetNotFound(format!(
                "{target} is being deleted"
            )));
        }
        AssignedIdentities::from_arm_json(&body)
            .map_err(|e| ArmError::Unexpected(format!("identity block of {target}: {e}")))
    }

    async fn patch_identity(
        &self,
        target: &Target,
        request: &PatchRequest,
    ) -> Result<(), ArmError> {
        let url = self.resource_url(target);
        let body = Bytes::from(request.body().to_string());
        let answer = self.call("patch", Method::PATCH, &url, Some(body)).await?;
        if !answer.is_success() {
            return Err(classify(&answer, self.config.default_retry_after));
        }
        match lro::monitor_of(&answer, &url) {
            None => Ok(()),
            Some(monitor) => self.follow(&monitor, answer.retry_after()).await,
        }
    }
}

/// Scheme and authority of the endpoint: where tokens may go.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    authority: String,
}

impl Origin {
    fn of(url: &str) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        Some(Self {
            scheme: uri.scheme_str()?.to_ascii_lowercase(),
            authority: uri.authority()?.as_str().to_ascii_lowercase(),
        })
    }

    fn serves(&self, url: &str) -> bool {
        Self::of(url).is_some_and(|o| o == *self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_only_to_the_endpoints_origin() {
        let o = Origin::of("https://Management.Azure.com").unwrap();
        assert!(o.serves("https://management.azure.com/subscriptions/s/operations/1?x=y"));
        assert!(!o.serves("https://evil.example/subscriptions/s/operations/1"));
        assert!(!o.serves("http://management.azure.com/x"));
        assert!(!o.serves("https://management.azure.com:8443/x"));
    }

    #[test]
    fn endpoints_must_be_https() {
        let config = |endpoint: &str| ArmClientConfig {
            endpoint: endpoint.into(),
            roots: TrustRoots::Custom(rustls::RootCertStore::empty()),
            ..ArmClientConfig::default()
        };
        let plain = ArmClient::new(config("http://localhost:1"), StaticToken::new("t"));
        assert!(matches!(plain, Err(ArmClientError::Endpoint(_))));
        let client = ArmClient::new(config("https://localhost:1/"), StaticToken::new("t")).unwrap();
        let vm = Target::Vm {
            subscription: "s".into(),
            resource_group: "g".into(),
            name: "vm0".into(),
        };
        assert_eq!(
            client.resource_url(&vm),
            "https://localhost:1/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm0?api-version=2024-07-01"
        );
    }
}
