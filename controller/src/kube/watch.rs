//! The kube-runtime watchers that feed the [`ClusterIndex`]: injected pods, nodes, opted-in namespaces, identity objects.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use podid_core::names;
use tracing::{info, warn};

use super::index::{ClusterIndex, Update};

/// The label selector of the pod watch: only pods the webhook injected.
pub fn pod_selector() -> String {
    format!("{}=true", names::INJECTED_LABEL)
}

/// The label selector of the namespace watch: only opted-in namespaces.
///
/// A namespace that loses the label leaves the selection, which the API
/// server reports as a deletion.
pub fn namespace_selector() -> String {
    format!("{}={}", names::INJECT_LABEL, names::INJECT_ENABLED)
}

/// The watched identity resource of `kind` (`AzureIdentity` or `AzureIdentityBinding`).
pub fn identity_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        names::IDENTITY_GROUP,
        names::IDENTITY_VERSION,
        kind,
    ))
}

type Updates = BoxStream<'static, Result<Update, (&'static str, watcher::Error)>>;

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    wrap: impl Fn(Event<K>) -> Update + Send + 'static,
) -> Updates
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher::watcher(api, config)
        .default_backoff()
        .map(move |e| e.map(&wrap).map_err(|err| (what, err)))
        .boxed()
}

/// All watch streams, merged.
pub fn updates(
    client: kube::Client,
) -> impl futures::Stream<Item = Result<Update, (&'static str, watcher::Error)>> {
    let identity = identity_resource(names::AZURE_IDENTITY_KIND);
    let binding = identity_resource(names::AZURE_IDENTITY_BINDING_KIND);
    let (ia, ba) = (identity.clone(), binding.clone());
    stream::select_all([
        watch(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(&pod_selector()),
            "pods",
            Update::Pod,
        ),
        watch(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            "nodes",
            Update::Node,
        ),
        watch(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default().labels(&namespace_selector()),
            "namespaces",
            Update::Namespace,
        ),
        watch(
            Api::<DynamicObject>::all_with(client.clone(), &identity),
            watcher::Config::default(),
            "azureidentities",
            move |e| Update::Identity(ia.clone(), e),
        ),
        watch(
            Api::<DynamicObject>::all_with(client, &binding),
            watcher::Config::default(),
            "azureidentitybindings",
            move |e| Update::Binding(ba.clone(), e),
        ),
    ])
}

/// Keeps `index` in step with the cluster until the streams end (they do not, unless dropped).
///
/// # Guarantees
/// Watch errors are retried with kube-runtime's default backoff and never
/// clear what the index holds; the index is synced only once every kind has
/// been listed completely.
pub async fn watch_cluster(client: kube::Client, index: Arc<ClusterIndex>) {
    let mut updates = std::pin::pin!(updates(client));
    let mut was_synced = false;
    while let Some(update) = updates.next().await {
        match update {
            Ok(update) => index.apply(update),
            Err((what, error)) => warn!(%what, %error, "watch failed; retrying"),
        }
        if !was_synced && index.is_synced() {
            was_synced = true;
            let snap = index.snapshot();
            info!(
                pods = snap.pods.len(),
                nodes = snap.nodes.len(),
                namespaces = snap.opted_in.len(),
                identities = snap.identities.identity_count(),
                bindings = snap.identities.binding_count(),
                "cluster index synced"
            );
        }
    }
}
