//! How the emulated ARM behaves: throttling buckets, operation latency, answer variants, faults.

use std::time::Duration;

use crate::azure::Fault;
use crate::limits::Rate;
use crate::state::Target;

/// ARM's throttling, as token buckets; `None` turns a bucket off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArmLimits {
    /// Writes (PATCH) per VM or scale set: "Update VM" refills 4 a minute, bucket 12.
    pub resource_write: Option<Rate>,
    /// Writes per subscription: 500 a minute, bucket 1500.
    pub subscription_write: Option<Rate>,
    /// Reads (GET of a VM or scale set) per subscription: 25 a second, bucket 250.
    pub subscription_read: Option<Rate>,
}

impl Default for ArmLimits {
    fn default() -> Self {
        Self {
            resource_write: Some(Rate::per_minute(4.0, 12.0)),
            subscription_write: Some(Rate::per_minute(500.0, 1500.0)),
            subscription_read: Some(Rate::per_minute(1500.0, 250.0)),
        }
    }
}

impl ArmLimits {
    /// No throttling at all.
    pub fn unlimited() -> Self {
        Self {
            resource_write: None,
            subscription_write: None,
            subscription_read: None,
        }
    }
}

/// How a PATCH that starts a long-running operation is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PatchAnswer {
    /// 200 with the resource, `provisioningState: Updating` (what Compute sends).
    #[default]
    Updating200,
    /// 202 Accepted without a body.
    Accepted202,
}

/// How ARM refuses an identity id that names no identity (deleted, or never created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownIdentityAnswer {
    /// 400 `FailedIdentityOperation` wrapping "Resource '…' was not found." (as seen in the field).
    #[default]
    FailedIdentityOperation400,
    /// 404 with the same body.
    NotFound404,
}

/// The emulated ARM's behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArmConfig {
    /// Throttling.
    pub limits: ArmLimits,
    /// How long an identity change of a VM takes (Azure: 10–20 s).
    pub vm_latency: Duration,
    /// How long an identity change of a scale set takes (Azure: 35–60 s).
    pub scale_set_latency: Duration,
    /// 200 + Updating, or 202.
    pub patch_answer: PatchAnswer,
    /// 400 or 404 for an unknown identity.
    pub unknown_identity: UnknownIdentityAnswer,
    /// Bearer tokens must be JWTs for `https://management.azure.com/` of the
    /// emulator's tenant, not expired (else any `Bearer <token>` passes).
    pub check_tokens: bool,
}

impl Default for ArmConfig {
    fn default() -> Self {
        Self {
            limits: ArmLimits::default(),
            vm_latency: Duration::ZERO,
            scale_set_latency: Duration::ZERO,
            patch_answer: PatchAnswer::default(),
            unknown_identity: UnknownIdentityAnswer::default(),
            check_tokens: false,
        }
    }
}

/// Which requests an injected ARM fault applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArmMatch {
    /// Only this method (`GET` or `PATCH`); any when `None`.
    pub method: Option<ArmMethod>,
    /// Only requests to this VM or scale set; any resource when `None`.
    pub target: Option<Target>,
}

impl ArmMatch {
    /// Any request to any resource.
    pub fn any() -> Self {
        Self::default()
    }

    /// PATCHes of `target`.
    pub fn patch(target: Target) -> Self {
        Self {
            method: Some(ArmMethod::Patch),
            target: Some(target),
        }
    }

    /// GETs of `target`.
    pub fn get(target: Target) -> Self {
        Self {
            method: Some(ArmMethod::Get),
            target: Some(target),
        }
    }

    pub(crate) fn matches(&self, method: ArmMethod, target: &Target) -> bool {
        self.method.is_none_or(|m| m == method) && self.target.as_ref().is_none_or(|t| t == target)
    }
}

/// The two methods the emulated ARM serves on VMs and scale sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArmMethod {
    /// Read.
    Get,
    /// Identity update.
    Patch,
}

/// An injected ARM failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmFault {
    /// Answer this status (5xx, 409, 429, …) with an ARM-shaped body.
    Answer(Fault),
    /// Answer nothing for this long (the client should give up first), then 504.
    Hang(Duration),
}
