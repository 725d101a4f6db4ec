//! Self-managed serving certificate (`--cert-secret`): the Kubernetes side of `podid_certs::manage`.
//!
//! The decisions (issue, rotate, retire) are `podid_certs`'; this module only
//! reads and writes the Secret and the MutatingWebhookConfiguration's
//! `caBundle`, with the preconditions that make concurrent replicas safe.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use podid_certs::{
    CertManager, Cluster, ClusterError, Published, ReloadingCertResolver, RotationPolicy,
    SecretData, ServiceName, Stored, SystemClock,
};
use serde_json::json;
use tracing::info;

/// The Secret's `type`: `tls.crt` and `tls.key` as Kubernetes expects them.
pub const SECRET_TYPE: &str = "kubernetes.io/tls";

/// Where the self-managed certificate lives and what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfManagedConfig {
    /// The Secret holding the CA and serving certificate.
    pub secret: String,
    /// The MutatingWebhookConfiguration whose `caBundle` is kept in step.
    pub webhook_config: String,
    /// The Service the API server calls; names the serving certificate.
    pub service: String,
    /// Namespace of the Secret and the Service; the client's default when unset.
    pub namespace: Option<String>,
    /// How often the Secret and the configuration are looked at.
    pub check_interval: Duration,
    /// Validity and rotation timings.
    pub policy: RotationPolicy,
}

/// The Secret and webhook configuration through the Kubernetes API.
#[derive(Clone)]
pub struct KubeCluster {
    secrets: Api<Secret>,
    webhooks: Api<MutatingWebhookConfiguration>,
    secret: String,
    webhook_config: String,
}

/// A certificate manager ready to run against the cluster.
pub struct SelfManaged {
    cluster: KubeCluster,
    service: ServiceName,
    interval: Duration,
    policy: RotationPolicy,
}

// === impl SelfManaged ===

impl SelfManaged {
    /// Binds `cfg` to `client`.
    pub fn new(cfg: SelfManagedConfig, client: Client) -> Self {
        let SelfManagedConfig {
            secret,
            webhook_config,
            service,
            namespace,
            check_interval,
            policy,
        } = cfg;
        let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
        info!(%namespace, %secret, %webhook_config, %service, "self-managed serving certificate");
        Self {
            cluster: KubeCluster::new(client, &namespace, secret, webhook_config),
            service: ServiceName::new(service, namespace),
            interval: check_interval,
            policy,
        }
    }

    /// Keeps `resolver` serving the Secret's certificate until `shutdown` completes.
    pub async fn run(
        self,
        resolver: Arc<ReloadingCertResolver>,
        shutdown: impl Future<Output = ()>,
    ) {
        let Self {
            cluster,
            service,
            interval,
            policy,
        } = self;
        CertManager::new(cluster, SystemClock, policy, service, resolver)
            .run(interval, shutdown)
            .await;
    }
}

impl std::fmt::Debug for SelfManaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfManaged")
            .field("service", &self.service)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

// === impl KubeCluster ===

impl KubeCluster {
    /// The Secret `secret` in `namespace` and the cluster-scoped configuration `webhook_config`.
    pub fn new(client: Client, namespace: &str, secret: String, webhook_config: String) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), namespace),
            webhooks: Api::all(client),
            secret,
            webhook_config,
        }
    }

    fn object(&self, data: &SecretData, resource_version: Option<&str>) -> Secret {
        let labels = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "podid-webhook".to_owned(),
            ),
            ("app.kubernetes.io/part-of".to_owned(), "podid".to_owned()),
        ]);
        let data = data.to_map().into_iter().map(|(k, v)| (k, ByteString(v)));
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret.clone()),
                labels: Some(labels),
                resource_version: resource_version.map(str::to_owned),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.to_owned()),
            data: Some(data.collect()),
            ..Secret::default()
        }
    }
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("secret", &self.secret)
            .field("webhook_config", &self.webhook_config)
            .finish_non_exhaustive()
    }
}

impl Cluster for KubeCluster {
    async fn get_secret(&self) -> Result<Option<Stored>, ClusterError> {
        let secret = self.secrets.get_opt(&self.secret).await;
        let Some(secret) = secret.map_err(|e| api("reading the Secret", "Secret", e))? else {
            return Ok(None);
        };
        Ok(Some(stored(secret)))
    }

    async fn create_secret(&self, data: &SecretData) -> Result<Stored, ClusterError> {
        let object = self.object(data, None);
        let created = self.secrets.create(&PostParams::default(), &object).await;
        Ok(stored(
            created.map_err(|e| api("creating the Secret", "Secret", e))?,
        ))
    }

    async fn replace_secret(
        &self,
        data: &SecretData,
        resource_version: &str,
    ) -> Result<Stored, ClusterError> {
        let object = self.object(data, Some(resource_version));
        let replaced = self
            .secrets
            .replace(&self.secret, &PostParams::default(), &object)
            .await;
        Ok(stored(
            replaced.map_err(|e| api("updating the Secret", "Secret", e))?,
        ))
    }

    async fn webhook_bundles(&self) -> Result<Published, ClusterError> {
        let what = "MutatingWebhookConfiguration";
        let config = self.webhooks.get(&self.webhook_config).await;
        let config = config.map_err(|e| api("reading the webhook configuration", what, e))?;
        let bundles = config.webhooks.unwrap_or_default().into_iter();
        Ok(Published {
            resource_version: config.metadata.resource_version.unwrap_or_default(),
            bundles: bundles
                .map(|w| w.client_config.ca_bundle.map(|b| b.0).unwrap_or_default())
                .collect(),
        })
    }

    async fn publish_bundle(&self, current: &Published, bundle: &[u8]) -> Result<(), ClusterError> {
        let what = "MutatingWebhookConfiguration";
        let patch = ca_bundle_patch(current, bundle).map_err(|e| {
            api(
                "building the caBundle patch",
                what,
                kube::Error::SerdeError(e),
            )
        })?;
        self.webhooks
            .patch(
                &self.webhook_config,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(|e| match e {
                // The `test` of the resourceVersion failed.
                kube::Error::Api(status) if status.is_invalid() => ClusterError::Conflict { what },
                e => api("patching the webhook configuration's caBundle", what, e),
            })?;
        Ok(())
    }
}

/// A JSON Patch setting every entry's `caBundle`, applied only if the
/// configuration is still at the resourceVersion it was read at (`test`).
///
/// Only `caBundle` is touched: everything else in the configuration
/// belongs to the chart.
pub fn ca_bundle_patch(
    current: &Published,
    bundle: &[u8],
) -> Result<json_patch::Patch, serde_json::Error> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    let test = json!({"op": "test", "path": "/metadata/resourceVersion", "value": current.resource_version});
    let sets = (0..current.bundles.len()).map(|i| {
        json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded})
    });
    serde_json::from_value(serde_json::Value::Array(
        std::iter::once(test).chain(sets).collect(),
    ))
}

fn stored(secret: Secret) -> Stored {
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Stored {
        data: SecretData::from_map(&data),
        resource_version: secret.metadata.resource_version.unwrap_or_default(),
    }
}

/// Maps the API server's answer: a stale resourceVersion or an existing
/// object on create is a conflict.
fn api(step: &'static str, what: &'static str, error: kube::Error) -> ClusterError {
    match &error {
        kube::Error::Api(status) if status.is_conflict() || status.is_already_exists() => {
            ClusterError::Conflict { what }
        }
        kube::Error::Api(status) if status.is_not_found() => ClusterError::NotFound { what },
        _ => ClusterError::Api {
            step,
            source: Box::new(error),
        },
    }
}
