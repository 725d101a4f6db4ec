//! The pure planner: desired identities per VM or scale set, against what Azure carries and what we added, into ARM PATCH requests.
//!
//! One pass of the controller is, with no I/O in between:
//!
//! 1. [`desired_state`]: pods (opted-in namespace, scheduled, not finished),
//!    their node's providerID and the identity objects → per target the
//!    identities pods need, and per pod what it wants and what is wrong;
//! 2. [`plan`]: desired × actual ([`AssignedIdentities`], read from ARM) ×
//!    ownership ([`TargetOwnership`], persisted) × [`Policy`] × `now` → per
//!    target adds, removals, deferred removals and updated ownership;
//! 3. [`TargetPlan::requests`]: the PATCH bodies, ≤ 150 changes each;
//! 4. after a PATCH succeeded: [`record_success`] for the ownership and
//!    [`AssignedIdentities::apply`] for the actual state.

mod actual;
mod changes;
mod desired;
mod input;
mod ownership;
mod policy;
mod request;
mod time;

#[cfg(test)]
mod tests;

pub use self::actual::{ArmShapeError, AssignedIdentities, UserAssigned};
pub use self::changes::{DeferredRemoval, Plan, TargetPlan, plan, plan_target};
pub use self::desired::{
    Desired, NeededIdentity, PodNeed, PodProblem, WantedIdentity, desired_state,
    is_user_assigned_identity_id,
};
pub use self::input::{ClusterView, PodInfo, PodKey, PodPhase};
pub use self::ownership::{OwnedIdentity, TargetOwnership, record_success};
pub use self::policy::Policy;
pub use self::request::{
    ChangeKind, IdentityChange, IdentityType, MAX_CHANGES_PER_REQUEST, PatchRequest, build_requests,
};
pub use self::time::Timestamp;
pub use podid_core::azure_ids::Target;
