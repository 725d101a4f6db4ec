//! ARM's moving parts: token buckets, injected faults, long-running operations, counters.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::config::{ArmConfig, ArmFault, ArmMatch, ArmMethod};
use super::error::ArmError;
use crate::ids;
use crate::limits::{self, Rate, TokenBucket};
use crate::state::{IdentityUpdate, Target};

/// Where a long-running operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationStatus {
    /// Still running.
    InProgress,
    /// Applied.
    Succeeded,
    /// Ended without applying anything.
    Failed,
}

impl OperationStatus {
    /// ARM's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// A long-running identity change.
#[derive(Clone, Debug)]
pub struct Operation {
    /// Operation id (a GUID).
    pub id: String,
    /// The VM or scale set it changes.
    pub target: Target,
    /// The change, applied when it succeeds.
    pub update: Option<IdentityUpdate>,
    /// Where it is.
    pub status: OperationStatus,
    /// Whether it was told to fail (then it applies nothing).
    pub fails: bool,
    /// Unix seconds at start and end.
    pub started: u64,
    /// Unix seconds at the end.
    pub ended: Option<u64>,
}

impl Operation {
    /// The status document of `GET …/operations/{id}`.
    pub fn status_json(&self) -> Value {
        let mut v = json!({
            "name": self.id,
            "status": self.status.as_str(),
            "startTime": rfc3339(self.started),
        });
        if let (Some(end), Value::Object(map)) = (self.ended, &mut v) {
            map.insert("endTime".into(), rfc3339(end).into());
        }
        if let (OperationStatus::Failed, Value::Object(map)) = (self.status, &mut v) {
            map.insert(
                "error".into(),
                json!({"code": "InternalExecutionError", "message": "An internal execution error occurred. Please retry later."}),
            );
        }
        v
    }
}

fn rfc3339(unix: u64) -> String {
    ids::aad_timestamp(unix).replace(' ', "T")
}

/// What the emulated ARM counted; a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArmCounters {
    /// GETs of each VM or scale set (any outcome).
    pub gets: BTreeMap<Target, u64>,
    /// PATCHes of each VM or scale set (any outcome).
    pub patches: BTreeMap<Target, u64>,
    /// 429 answers sent.
    pub throttled: u64,
    /// Operations started, succeeded, failed.
    pub operations_started: u64,
    /// Operations that applied their change.
    pub operations_succeeded: u64,
    /// Operations that ended Failed.
    pub operations_failed: u64,
    /// Operations running now.
    pub in_flight: usize,
    /// The most operations that ran at once.
    pub max_in_flight: usize,
}

/// ARM's runtime, behind the [`crate::Azure`] handle's lock.
#[derive(Debug, Default)]
pub struct ArmRuntime {
    pub(crate) config: ArmConfig,
    pub(crate) target_latency: HashMap<Target, Duration>,
    resource_buckets: HashMap<Target, TokenBucket>,
    subscription_write: Option<TokenBucket>,
    subscription_read: Option<TokenBucket>,
    pub(crate) faults: Vec<(ArmMatch, ArmFault, usize)>,
    pub(crate) failing_operations: Vec<(Option<Target>, usize)>,
    pub(crate) operations: HashMap<String, Operation>,
    busy: HashMap<Target, String>,
    last_status: HashMap<Target, OperationStatus>,
    pub(crate) counters: ArmCounters,
}

impl ArmRuntime {
    /// A runtime with `config` and full buckets.
    pub fn new(config: ArmConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Replaces the configuration; buckets start full again.
    pub fn configure(&mut self, config: ArmConfig) {
        self.config = config;
        self.resource_buckets.clear();
        self.subscription_write = None;
        self.subscription_read = None;
    }

    /// Sets the counters back to zero (operations running stay counted as running).
    pub fn reset_counters(&mut self) {
        self.counters = ArmCounters {
            in_flight: self.counters.in_flight,
            ..ArmCounters::default()
        };
    }

    /// Counts a request and takes the next injected fault that matches it.
    pub fn admit(&mut self, method: ArmMethod, target: &Target) -> Option<ArmFault> {
        let counter = match method {
            ArmMethod::Get => &mut self.counters.gets,
            ArmMethod::Patch => &mut self.counters.patches,
        };
        *counter.entry(target.clone()).or_default() += 1;
        let rule = self
            .faults
            .iter_mut()
            .find(|(m, _, left)| *left > 0 && m.matches(method, target))?;
        rule.2 -= 1;
        let fault = rule.1;
        self.faults.retain(|(_, _, left)| *left > 0);
        Some(fault)
    }

    /// Takes a token from every bucket a request of `method` on `target` draws from.
    pub fn throttle(&mut self, method: ArmMethod, target: &Target) -> Result<(), ArmError> {
        let now = Instant::now();
        let limits = self.config.limits;
        let mut buckets: Vec<(Rate, &mut TokenBucket, String)> = Vec::new();
        match method {
            ArmMethod::Get => {
                if let Some(rate) = limits.subscription_read {
                    let b = self
                        .subscription_read
                        .get_or_insert_with(|| TokenBucket::full(rate, now));
                    buckets.push((rate, b, "GetSubscription".into()));
                }
            }
            ArmMethod::Patch => {
                if let Some(rate) = limits.resource_write {
                    let b = self
                        .resource_buckets
                        .entry(target.clone())
                        .or_insert_with(|| TokenBucket::full(rate, now));
                    buckets.push((rate, b, resource_policy(target)));
                }
                if let Some(rate) = limits.subscription_write {
                    let b = self
                        .subscription_write
                        .get_or_insert_with(|| TokenBucket::full(rate, now));
                    buckets.push((rate, b, "UpdateSubscription".into()));
                }
            }
        }
        for (rate, bucket, policy) in buckets {
            if let Err(wait) = bucket.take(rate, now) {
                self.counters.throttled += 1;
                return Err(ArmError::throttled(
                    limits::retry_after_secs(wait),
                    &format!("Microsoft.Compute/{policy}"),
                    rate.burst as u64,
                ));
            }
        }
        Ok(())
    }

    /// `x-ms-ratelimit-remaining-resource` for a request of `method` on `target`.
    pub fn remaining_header(
        &mut self,
        method: ArmMethod,
        target: Option<&Target>,
    ) -> Option<String> {
        let now = Instant::now();
        let limits = self.config.limits;
        let mut parts = Vec::new();
        let mut add = |name: String, rate: Option<Rate>, bucket: Option<&mut TokenBucket>| {
            if let Some(rate) = rate {
                let left = bucket.map_or(rate.burst as u64, |b| b.remaining(rate, now));
                parts.push(format!("Microsoft.Compute/{name};{left}"));
            }
        };
        match method {
            ArmMethod::Get => add(
                "GetSubscription".into(),
                limits.subscription_read,
                self.subscription_read.as_mut(),
            ),
            ArmMethod::Patch => {
                if let Some(t) = target {
                    add(
                        resource_policy(t),
                        limits.resource_write,
                        self.resource_buckets.get_mut(t),
                    );
                }
                add(
                    "UpdateSubscription".into(),
                    limits.subscription_write,
                    self.subscription_write.as_mut(),
                );
            }
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }

    /// The operation running on `target`, if any.
    pub fn running_on(&self, target: &Target) -> Option<&str> {
        self.busy.get(target).map(String::as_str)
    }

    /// `provisioningState` of `target`: Updating while an operation runs, else how the last one ended.
    pub fn provisioning_state(&self, target: &Target) -> &'static str {
        if self.busy.contains_key(target) {
            return "Updating";
        }
        match self.last_status.get(target) {
            Some(OperationStatus::Failed) => "Failed",
            _ => "Succeeded",
        }
    }

    /// Starts an operation on `target`; returns its id and how long it takes.
    pub fn start(&mut self, target: &Target, update: Option<IdentityUpdate>) -> (String, Duration) {
        let id = ids::random_guid();
        let fails = self.take_operation_failure(target);
        let op = Operation {
            id: id.clone(),
            target: target.clone(),
            update,
            status: OperationStatus::InProgress,
            fails,
            started: ids::unix_now(),
            ended: None,
        };
        self.operations.insert(id.clone(), op);
        self.busy.insert(target.clone(), id.clone());
        let c = &mut self.counters;
        c.operations_started += 1;
        c.in_flight = self.busy.len();
        c.max_in_flight = c.max_in_flight.max(c.in_flight);
        let latency = self
            .target_latency
            .get(target)
            .copied()
            .unwrap_or(match target {
                Target::Vm(_) => self.config.vm_latency,
                Target::ScaleSet(_) => self.config.scale_set_latency,
            });
        (id, latency)
    }

    fn take_operation_failure(&mut self, target: &Target) -> bool {
        let found = self
            .failing_operations
            .iter_mut()
            .find(|(t, left)| *left > 0 && t.as_ref().is_none_or(|t| t == target));
        let Some(rule) = found else {
            return false;
        };
        rule.1 -= 1;
        self.failing_operations.retain(|(_, left)| *left > 0);
        true
    }

    /// Ends operation `id` with `status`.
    pub fn finish(&mut self, id: &str, status: OperationStatus) {
        let Some(op) = self.operations.get_mut(id) else {
            return;
        };
        op.status = status;
        op.ended = Some(ids::unix_now());
        let target = op.target.clone();
        if self.busy.get(&target).is_some_and(|running| running == id) {
            self.busy.remove(&target);
        }
        self.last_status.insert(target, status);
        let c = &mut self.counters;
        match status {
            OperationStatus::Succeeded => c.operations_succeeded += 1,
            _ => c.operations_failed += 1,
        }
        c.in_flight = self.busy.len();
    }
}

fn resource_policy(target: &Target) -> String {
    match target {
        Target::Vm(_) => "UpdateVMResource".into(),
        Target::ScaleSet(_) => "UpdateVMScaleSetResource".into(),
    }
}
