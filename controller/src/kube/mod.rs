//! The controller's Kubernetes edge: watchers feeding the cluster index, the debounced pass trigger, the Lease, pod reports and the ownership ConfigMap.
//!
//! - [`watch_cluster`] runs kube-runtime watchers on injected pods
//!   (`podid.io/injected=true`), nodes, opted-in namespaces and the identity
//!   CRDs, and keeps a [`ClusterIndex`] whose [`ClusterSnapshot::view`] is the
//!   planner's [`crate::plan::ClusterView`].
//! - [`Trigger`] turns index changes into debounced passes.
//! - [`Leadership`] contests a `coordination.k8s.io` Lease (kube-lease-manager).
//! - [`StatusFeed`] takes passes, executor [`crate::seams::Report`]s and ARM
//!   reads, and writes the `podid.io/IdentityAssigned` condition and Events
//!   through a [`PodSink`] ([`KubePodSink`] in production).
//! - [`ConfigMapStore`] is the [`crate::seams::OwnershipStore`].

mod convert;
mod index;
mod lease;
mod mirror;
mod pods;
mod reporter;
mod status;
mod store;
mod trigger;
mod watch;

#[cfg(test)]
mod tests;

pub use self::convert::{ConditionState, WatchedPod};
pub use self::index::{ClusterIndex, ClusterSnapshot, Update};
pub use self::lease::{Leadership, LeaseSettings, LeaseSettingsError};
pub use self::mirror::Mirror;
pub use self::pods::{
    EVENT_ACTION, KubePodSink, PodSink, PodWriteError, REPORTING_CONTROLLER, condition_patch,
    event, pod_reference,
};
pub use self::reporter::{ObservingArm, StatusFeed};
pub use self::status::{
    Observed, PodEvent, PodWrite, REASON_ASSIGNED, REASON_FAILED, StatusBook, Verdict, judge,
    reasons,
};
pub use self::store::{ConfigMapStore, decode, encode, key_of};
pub use self::trigger::{Debounce, Trigger};
pub use self::watch::{
    identity_resource, namespace_selector, pod_selector, updates, watch_cluster,
};
