//! What tests and benchmarks do to the emulated ARM through the [`Azure`] handle: configure, inject faults, read counters.

use std::time::Duration;

use super::config::{ArmConfig, ArmFault, ArmMatch};
use super::runtime::ArmCounters;
use crate::azure::Azure;
use crate::state::{Identity, StateError, Target};

impl Azure {
    /// Replaces ARM's configuration (throttling buckets start full again).
    pub fn set_arm_config(&self, config: ArmConfig) {
        self.arm().configure(config);
    }

    /// ARM's configuration now.
    pub fn arm_config(&self) -> ArmConfig {
        self.arm().config
    }

    /// Identity changes of `target` take `latency` (instead of the VM or
    /// scale-set latency of the configuration): one slow scale set.
    pub fn set_arm_latency(&self, target: &Target, latency: Duration) {
        self.arm().target_latency.insert(target.clone(), latency);
    }

    /// The next `times` ARM requests matching `which` answer `fault`.
    pub fn inject_arm_faults(&self, which: ArmMatch, fault: ArmFault, times: usize) {
        if times > 0 {
            self.arm().faults.push((which, fault, times));
        }
    }

    /// The next `times` operations started on `target` (any target when
    /// `None`) end `Failed` and apply nothing, as ARM's failed operations do.
    pub fn fail_arm_operations(&self, target: Option<Target>, times: usize) {
        if times > 0 {
            self.arm().failing_operations.push((target, times));
        }
    }

    /// Drops every injected ARM fault and operation failure not yet used.
    pub fn clear_arm_faults(&self) {
        let mut arm = self.arm();
        arm.faults.clear();
        arm.failing_operations.clear();
    }

    /// Whether ARM's caller has Managed Identity Operator on `identity`;
    /// without it, adding the identity gets 403 LinkedAuthorizationFailed.
    pub fn set_caller_can_assign(&self, identity: &str, can: bool) -> Result<(), StateError> {
        self.write(|s| s.set_caller_can_assign(identity, can))
    }

    /// Deletes `identity`: still listed where assigned, refused by ARM.
    pub fn delete_identity(&self, identity: &str) -> Result<Identity, StateError> {
        self.write(|s| s.delete_identity(identity))
    }

    /// A snapshot of ARM's counters.
    pub fn arm_counters(&self) -> ArmCounters {
        self.arm().counters.clone()
    }

    /// GETs of `target` so far.
    pub fn arm_gets(&self, target: &Target) -> u64 {
        self.arm().counters.gets.get(target).copied().unwrap_or(0)
    }

    /// PATCHes of `target` so far.
    pub fn arm_patches(&self, target: &Target) -> u64 {
        self.arm()
            .counters
            .patches
            .get(target)
            .copied()
            .unwrap_or(0)
    }

    /// 429 answers ARM sent so far.
    pub fn arm_throttled(&self) -> u64 {
        self.arm().counters.throttled
    }

    /// Operations running now.
    pub fn arm_in_flight(&self) -> usize {
        self.arm().counters.in_flight
    }
}
