//! The controller's edges as small traits: ARM, the ownership store, the clock and reports.
//!
//! The executor (`exec`) is written against these; the ARM client (`arm`) and
//! the kube glue (`kube`) implement them; tests use in-memory fakes or the
//! Azure stand-in.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use podid_core::azure_ids::Target;

use crate::plan::{AssignedIdentities, IdentityChange, PatchRequest, TargetOwnership, Timestamp};

/// Why an ARM call failed, as the executor must react to it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// 429: wait at least this long before calling for this target again.
    #[error("throttled by ARM; retry after {retry_after:?}")]
    Throttled {
        /// From `Retry-After`, or a default when absent.
        retry_after: Duration,
    },
    /// 409: another operation runs on the resource.
    #[error("another operation is running on the resource: {0}")]
    Conflict(String),
    /// ARM refused these identities (LinkedAuthorizationFailed, FailedIdentityOperation,
    /// deleted identity): drop them from the batch and report them; the rest may proceed.
    #[error("ARM refused identities {identities:?}: {message}")]
    IdentitiesRefused {
        /// Canonical ids ARM named.
        identities: Vec<String>,
        /// ARM's code and message.
        message: String,
    },
    /// The VM or scale set does not exist (or is being deleted).
    #[error("target not found: {0}")]
    TargetNotFound(String),
    /// The long-running operation ended `Failed` or `Canceled`: nothing was applied.
    #[error("operation failed: {0}")]
    OperationFailed(String),
    /// 5xx, timeouts, connection errors: retry with backoff.
    #[error("transient ARM failure: {0}")]
    Transient(String),
    /// No token, or ARM said 401/403 for the caller itself.
    #[error("not authorized: {0}")]
    Unauthorized(String),
    /// Any other answer the controller cannot act on.
    #[error("unexpected ARM answer: {0}")]
    Unexpected(String),
}

impl ArmError {
    /// Bounded label value for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "throttled",
            Self::Conflict(_) => "conflict",
            Self::IdentitiesRefused { .. } => "identities_refused",
            Self::TargetNotFound(_) => "target_not_found",
            Self::OperationFailed(_) => "operation_failed",
            Self::Transient(_) => "transient",
            Self::Unauthorized(_) => "unauthorized",
            Self::Unexpected(_) => "unexpected",
        }
    }
}

/// Azure Resource Manager, reduced to what the controller does with it.
pub trait Arm: Send + Sync + 'static {
    /// `GET` the target and read its `identity` block.
    fn get_identity(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<AssignedIdentities, ArmError>> + Send;

    /// `PATCH` one request's body and follow the long-running operation to its end.
    fn patch_identity(
        &self,
        target: &Target,
        request: &PatchRequest,
    ) -> impl Future<Output = Result<(), ArmError>> + Send;
}

/// A store failure (the records could not be read or written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ownership store: {0}")]
pub struct StoreError(pub String);

/// Where the controller records what it added, so a restart neither forgets nor invents.
pub trait OwnershipStore: Send + Sync + 'static {
    /// Every target's records.
    fn load(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<Target, TargetOwnership>, StoreError>> + Send;

    /// Replaces one target's records (called after every successful PATCH, before it is reported).
    fn save(
        &self,
        target: &Target,
        records: &TargetOwnership,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The wall clock, injectable for tests.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Timestamp::from_unix_secs(secs)
    }
}

/// What the executor reports about a target, for Events, pod conditions and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// These changes are now in effect on the target.
    Applied {
        /// The VM or scale set.
        target: Target,
        /// The changes ARM accepted.
        changes: Vec<IdentityChange>,
    },
    /// These identities could not be assigned to the target (reported on the pods that want them).
    IdentityFailed {
        /// The VM or scale set.
        target: Target,
        /// Canonical identity ids.
        identities: Vec<String>,
        /// Why, for a person.
        reason: String,
    },
    /// The target could not be changed at all for now (throttled, failing); it will be retried.
    TargetFailed {
        /// The VM or scale set.
        target: Target,
        /// Why.
        reason: String,
    },
}
