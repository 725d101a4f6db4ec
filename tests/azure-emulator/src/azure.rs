//! The shared handle every emulated service and every test holds: state, limits, counters and injected faults.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::arm::ArmRuntime;
use crate::limits::{self, ImdsLimits, TokenBucket};
use crate::state::{AzureState, StateError, Target};

/// An injected failure: the status (404, 410, 429, 500, 503, …) and an
/// optional `Retry-After` in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// HTTP status to answer.
    pub status: u16,
    /// `Retry-After` header value, if any.
    pub retry_after: Option<u64>,
}

impl Fault {
    /// A fault with `status` and no `Retry-After`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` of `secs` seconds.
    pub fn retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }
}

/// Shared handle to the emulated Azure: cheap to clone.
///
/// Locks are held only for short synchronous sections, never across an
/// `.await`; a poisoned lock is taken over rather than propagated, because a
/// panicking test thread must not take every later request down with it.
#[derive(Clone, Debug)]
pub struct Azure {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: RwLock<AzureState>,
    runtime: Mutex<Runtime>,
    arm: Mutex<ArmRuntime>,
}

#[derive(Debug)]
struct Runtime {
    limits: ImdsLimits,
    imds_token_lifetime: Duration,
    aad_token_lifetime: Duration,
    vms: HashMap<String, VmRuntime>,
    aad_faults: VecDeque<Fault>,
    aad_requests: HashMap<String, u64>,
}

#[derive(Debug, Default)]
struct VmRuntime {
    identity_bucket: Option<TokenBucket>,
    metadata_bucket: Option<TokenBucket>,
    in_flight: usize,
    faults: VecDeque<Fault>,
    latency: Duration,
    token_requests: u64,
    issued: HashMap<String, u64>,
}

/// What the IMDS token handler may do with a request.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Go on: wait `latency`, then answer `fault` if any, else serve.
    Go {
        _slot: InFlight,
        latency: Duration,
        fault: Option<Fault>,
    },
    /// Answer 429 with this `Retry-After`.
    Throttled(u64),
}

/// A taken concurrency slot, given back on drop.
#[derive(Debug)]
pub(crate) struct InFlight {
    azure: Azure,
    vm: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut rt = self.azure.runtime();
        if let Some(vm) = rt.vms.get_mut(&self.vm) {
            vm.in_flight = vm.in_flight.saturating_sub(1);
        }
    }
}

/// Default lifetime of managed-identity tokens (IMDS hands out tokens of
/// about 24 h).
pub const DEFAULT_IMDS_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// Default lifetime of Azure AD client-credentials tokens (`expires_in` 3599).
pub const DEFAULT_AAD_TOKEN_LIFETIME: Duration = Duration::from_secs(3_599);

// === impl Azure: state ===

impl Azure {
    /// A handle over `state` with Azure's default IMDS limits.
    pub fn new(state: AzureState) -> Self {
        let runtime = Runtime {
            limits: ImdsLimits::default(),
            imds_token_lifetime: DEFAULT_IMDS_TOKEN_LIFETIME,
            aad_token_lifetime: DEFAULT_AAD_TOKEN_LIFETIME,
            vms: HashMap::new(),
            aad_faults: VecDeque::new(),
            aad_requests: HashMap::new(),
        };
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                runtime: Mutex::new(runtime),
                arm: Mutex::new(ArmRuntime::default()),
            }),
        }
    }

    /// Runs `f` over the state.
    pub fn read<R>(&self, f: impl FnOnce(&AzureState) -> R) -> R {
        f(&self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` over the state, for changes.
    pub fn write<R>(&self, f: impl FnOnce(&mut AzureState) -> R) -> R {
        f(&mut self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Assigns identity `identity` (name, client id, principal id or resource
    /// id) to `target`.
    pub fn assign(&self, target: &Target, identity: &str) -> Result<(), StateError> {
        self.write(|s| s.assign(target, identity)).map(drop)
    }

    /// Removes identity `identity` from `target`.
    pub fn unassign(&self, target: &Target, identity: &str) -> Result<(), StateError> {
        self.write(|s| s.unassign(target, identity)).map(drop)
    }

    /// Assigns `identity` to VM `vm`.
    pub fn assign_to_vm(&self, vm: &str, identity: &str) -> Result<(), StateError> {
        self.assign(&Target::Vm(vm.into()), identity)
    }

    /// Removes `identity` from VM `vm`.
    pub fn unassign_from_vm(&self, vm: &str, identity: &str) -> Result<(), StateError> {
        self.unassign(&Target::Vm(vm.into()), identity)
    }

    /// Assigns `identity` to scale set `set` (so to every VM in it).
    pub fn assign_to_scale_set(&self, set: &str, identity: &str) -> Result<(), StateError> {
        self.assign(&Target::ScaleSet(set.into()), identity)
    }

    /// Removes `identity` from scale set `set`.
    pub fn unassign_from_scale_set(&self, set: &str, identity: &str) -> Result<(), StateError> {
        self.unassign(&Target::ScaleSet(set.into()), identity)
    }
}

// === impl Azure: limits, faults, counters ===

impl Azure {
    fn runtime(&self) -> MutexGuard<'_, Runtime> {
        self.inner
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// ARM's runtime (buckets, operations, faults, counters). Never held
    /// together with the state lock: take the state first, release it, then this.
    pub(crate) fn arm(&self) -> MutexGuard<'_, ArmRuntime> {
        self.inner
            .arm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn with_vm<R>(&self, vm: &str, f: impl FnOnce(&mut VmRuntime) -> R) -> R {
        f(self.runtime().vms.entry(vm.to_owned()).or_default())
    }

    /// Replaces the IMDS limits of every VM (buckets start full again).
    pub fn set_imds_limits(&self, limits: ImdsLimits) {
        let mut rt = self.runtime();
        rt.limits = limits;
        for vm in rt.vms.values_mut() {
            vm.identity_bucket = None;
            vm.metadata_bucket = None;
        }
    }

    /// Lifetime of IMDS tokens issued from now on (tests of refresh logic
    /// shorten it).
    pub fn set_imds_token_lifetime(&self, lifetime: Duration) {
        self.runtime().imds_token_lifetime = lifetime;
    }

    /// Lifetime of IMDS tokens issued now.
    pub fn imds_token_lifetime(&self) -> Duration {
        self.runtime().imds_token_lifetime
    }

    /// Lifetime of Azure AD tokens issued from now on.
    pub fn set_aad_token_lifetime(&self, lifetime: Duration) {
        self.runtime().aad_token_lifetime = lifetime;
    }

    /// Lifetime of Azure AD tokens issued now.
    pub fn aad_token_lifetime(&self) -> Duration {
        self.runtime().aad_token_lifetime
    }

    /// The next `times` token requests to VM `vm`'s IMDS answer `fault`.
    pub fn inject_imds_faults(&self, vm: &str, fault: Fault, times: usize) {
        self.with_vm(vm, |v| v.faults.extend(std::iter::repeat_n(fault, times)));
    }

    /// Drops faults not yet answered.
    pub fn clear_imds_faults(&self, vm: &str) {
        self.with_vm(vm, |v| v.faults.clear());
    }

    /// Every token request to VM `vm`'s IMDS waits `latency` before answering
    /// (holding its concurrency slot, as a slow IMDS would).
    pub fn set_imds_latency(&self, vm: &str, latency: Duration) {
        self.with_vm(vm, |v| v.latency = latency);
    }

    /// Token requests that reached VM `vm`'s IMDS (any outcome, once past the
    /// header and parameter checks: throttled and faulted ones count).
    pub fn imds_token_requests(&self, vm: &str) -> u64 {
        self.with_vm(vm, |v| v.token_requests)
    }

    /// Tokens VM `vm`'s IMDS issued for `identity` (name, client id,
    /// principal id or resource id of a user-assigned identity, or a system
    /// identity's client id).
    pub fn imds_tokens_issued(&self, vm: &str, identity: &str) -> u64 {
        let key = self
            .read(|s| s.identity(identity).map(|i| i.client_id.clone()))
            .unwrap_or_else(|| identity.to_owned())
            .to_ascii_lowercase();
        self.with_vm(vm, |v| v.issued.get(&key).copied().unwrap_or(0))
    }

    /// The next `times` Azure AD token requests answer `fault`.
    pub fn inject_aad_faults(&self, fault: Fault, times: usize) {
        self.runtime()
            .aad_faults
            .extend(std::iter::repeat_n(fault, times));
    }

    /// Azure AD token requests made with client id `client_id` (any outcome).
    pub fn aad_token_requests(&self, client_id: &str) -> u64 {
        let key = client_id.to_ascii_lowercase();
        self.runtime().aad_requests.get(&key).copied().unwrap_or(0)
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.arm().reset_counters();
        let mut rt = self.runtime();
        rt.aad_requests.clear();
        for vm in rt.vms.values_mut() {
            vm.token_requests = 0;
            vm.issued.clear();
        }
    }

    /// Counts a token request and applies the managed-identity limits.
    pub(crate) fn admit_token_request(&self, vm: &str) -> Admission {
        let now = Instant::now();
        let mut rt = self.runtime();
        let limits = rt.limits;
        let v = rt.vms.entry(vm.to_owned()).or_default();
        v.token_requests += 1;
        if limits
            .identity_concurrency
            .is_some_and(|max| v.in_flight >= max)
        {
            return Admission::Throttled(1);
        }
        if let Some(rate) = limits.identity_rate {
            let bucket = v
                .identity_bucket
                .get_or_insert_with(|| TokenBucket::full(rate, now));
            if let Err(wait) = bucket.take(rate, now) {
                return Admission::Throttled(limits::retry_after_secs(wait));
            }
        }
        v.in_flight += 1;
        Admission::Go {
            _slot: InFlight {
                azure: self.clone(),
                vm: vm.to_owned(),
            },
            latency: v.latency,
            fault: v.faults.pop_front(),
        }
    }

    /// Applies the limit of the other IMDS paths; `Err` holds `Retry-After`.
    pub(crate) fn admit_metadata_request(&self, vm: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut rt = self.runtime();
        let Some(rate) = rt.limits.metadata_rate else {
            return Ok(());
        };
        let v = rt.vms.entry(vm.to_owned()).or_default();
        let bucket = v
            .metadata_bucket
            .get_or_insert_with(|| TokenBucket::full(rate, now));
        bucket.take(rate, now).map_err(limits::retry_after_secs)
    }

    /// Records a token issued by VM `vm`'s IMDS for client id `client_id`.
    pub(crate) fn record_issued(&self, vm: &str, client_id: &str) {
        let key = client_id.to_ascii_lowercase();
        self.with_vm(vm, |v| *v.issued.entry(key).or_default() += 1);
    }

    /// Counts an Azure AD token request and takes the next injected fault.
    pub(crate) fn admit_aad_request(&self, client_id: &str) -> Option<Fault> {
        let mut rt = self.runtime();
        *rt.aad_requests
            .entry(client_id.to_ascii_lowercase())
            .or_default() += 1;
        rt.aad_faults.pop_front()
    }
}
