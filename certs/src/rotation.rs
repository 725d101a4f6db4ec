//! When to issue, renew and retire certificates: pure decisions over a Secret's contents and the time.
//!
//! The rotation of the CA never leaves a client without trust in the
//! certificate it is served:
//!
//! 1. **Stage**: a new CA is issued and becomes the signing CA (`ca.crt`),
//!    and joins the old one in `ca-bundle.crt`; the serving certificate is
//!    still the old CA's.
//! 2. **Publish**: the bundle is written into the webhook configuration
//!    (the caller's job, on every pass).
//! 3. **Switch**: once the published bundle holds the new CA, and
//!    [`RotationPolicy::publish_grace`] has passed since it was issued (the
//!    API servers' caches catch up), the serving certificate is re-issued by
//!    the new CA.
//! 4. **Retire**: [`RotationPolicy::overlap`] after the switch (every replica
//!    has loaded the new certificate), the bundle drops the old CA.

use std::time::{Duration, SystemTime};

use crate::issue::{IssueError, ServiceName, issue_ca, issue_serving, issued_at};
use crate::material::{Material, SecretData, bundle_pem, pem_of};

const DAY: Duration = Duration::from_secs(86_400);
const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// The timings of the self-managed certificates.
///
/// Serving certificates are renewed at two thirds of their life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Validity of a new CA.
    pub ca_validity: Duration,
    /// A new CA is staged when the signing CA has less than this left.
    /// At least `serving_validity`, so a serving certificate issued right
    /// after a switch gets its full life.
    pub ca_renew_before: Duration,
    /// Validity of a new serving certificate (cut to the CA's end).
    pub serving_validity: Duration,
    /// How long after a CA is staged, and only once it is published, the
    /// serving certificate switches to it.
    pub publish_grace: Duration,
    /// How long after the switch the old CA stays trusted, so replicas that
    /// have not reloaded yet keep being trusted.
    pub overlap: Duration,
}

/// What a Secret needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing, for now.
    Keep,
    /// The serving certificate should move to the staged CA, which is not
    /// published yet (or was published too recently).
    AwaitPublication,
    /// Stage a new CA (step 1).
    StageCa,
    /// Issue a new serving certificate from the signing CA.
    RenewServing(RenewReason),
    /// Trust only the signing CA (step 4).
    RetireOldCas,
    /// The bundle lacks the signing CA, or is unreadable (edited by hand?): add it.
    RepairBundle,
}

/// Why a serving certificate is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewReason {
    /// Two thirds of its life have passed.
    Due,
    /// It was issued by an older CA (step 3).
    NewCa,
    /// It names other DNS names than the Service's.
    Names,
    /// It is not valid for the Service at all (expired, foreign): nothing to lose.
    Invalid,
}

// === impl RotationPolicy ===

impl Default for RotationPolicy {
    /// CA 5 years, staged 1 year before its end; serving 1 year; switch 2
    /// minutes after publication; old CA trusted 1 day past the switch.
    fn default() -> Self {
        Self {
            ca_validity: 5 * YEAR,
            ca_renew_before: YEAR,
            serving_validity: YEAR,
            publish_grace: Duration::from_secs(120),
            overlap: DAY,
        }
    }
}

// === impl Plan ===

impl Plan {
    /// A stable, low-cardinality name, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::AwaitPublication => "await_publication",
            Self::StageCa => "stage_ca",
            Self::RenewServing(RenewReason::Due) => "renew_serving_due",
            Self::RenewServing(RenewReason::NewCa) => "switch_serving_to_new_ca",
            Self::RenewServing(RenewReason::Names) => "renew_serving_names",
            Self::RenewServing(RenewReason::Invalid) => "renew_serving_invalid",
            Self::RetireOldCas => "retire_old_cas",
            Self::RepairBundle => "repair_bundle",
        }
    }

    /// Whether the plan changes the Secret.
    pub fn writes(&self) -> bool {
        !matches!(self, Self::Keep | Self::AwaitPublication)
    }
}

/// Decides what `material` needs at `now`.
///
/// `ca_published`: every entry of the webhook configuration trusts the
/// signing CA (`ca.crt`).
pub fn plan(
    policy: &RotationPolicy,
    service: &ServiceName,
    now: SystemTime,
    material: &Material,
    ca_published: bool,
) -> Plan {
    let ca = &material.ca;
    if !material.bundle.iter().any(|c| c.der == ca.der) {
        return Plan::RepairBundle;
    }
    if now + policy.ca_renew_before >= ca.validity.not_after {
        return Plan::StageCa;
    }
    let host = service.host();
    if !material.serving_verifies(std::slice::from_ref(&ca.der), &host, now) {
        let bundle: Vec<_> = material.bundle.iter().map(|c| c.der.clone()).collect();
        let trusted_now = material.serving_verifies(&bundle, &host, now);
        let settled = now >= issued_at(ca.validity.not_before) + policy.publish_grace;
        return match (trusted_now, ca_published && settled) {
            (false, _) => Plan::RenewServing(RenewReason::Invalid),
            (true, true) => Plan::RenewServing(RenewReason::NewCa),
            (true, false) => Plan::AwaitPublication,
        };
    }
    let names = crate::inspect::summarize(material.leaf()).map(|s| s.dns_names);
    if names.as_deref() != Some(service.dns_names().as_slice()) {
        return Plan::RenewServing(RenewReason::Names);
    }
    if now >= renew_time(material) {
        return Plan::RenewServing(RenewReason::Due);
    }
    let switched_at = issued_at(material.serving_validity.not_before);
    let others_expired = material
        .bundle
        .iter()
        .filter(|c| c.der != ca.der)
        .all(|c| c.validity.not_after <= now);
    if material.bundle.len() > 1 && (now >= switched_at + policy.overlap || others_expired) {
        return Plan::RetireOldCas;
    }
    Plan::Keep
}

/// When the serving certificate is due: two thirds into its validity.
pub fn renew_time(material: &Material) -> SystemTime {
    let validity = material.serving_validity;
    let life = validity
        .not_after
        .duration_since(validity.not_before)
        .unwrap_or_default();
    validity.not_before + life * 2 / 3
}

/// A new Secret: a fresh CA, trusted alone, and a serving certificate it signed.
pub fn fresh(
    policy: &RotationPolicy,
    service: &ServiceName,
    now: SystemTime,
) -> Result<SecretData, IssueError> {
    let (ca, signer) = issue_ca(now, policy.ca_validity)?;
    let serving = issue_serving(&signer, service, now, policy.serving_validity)?;
    Ok(SecretData {
        tls_crt: serving.cert_pem.into_bytes(),
        tls_key: serving.key_pem.into_bytes(),
        ca_bundle: ca.cert_pem.clone().into_bytes(),
        ca_crt: ca.cert_pem.into_bytes(),
        ca_key: ca.key_pem.into_bytes(),
    })
}

/// The Secret's new contents after `plan`; `None` if it does not write.
pub fn apply(
    plan: Plan,
    policy: &RotationPolicy,
    service: &ServiceName,
    now: SystemTime,
    material: &Material,
) -> Result<Option<SecretData>, IssueError> {
    let mut data = material.data.clone();
    match plan {
        Plan::Keep | Plan::AwaitPublication => return Ok(None),
        Plan::StageCa => {
            let (ca, _) = issue_ca(now, policy.ca_validity)?;
            // Expired CAs protect nothing; the rest stay until retired.
            let kept = material
                .bundle
                .iter()
                .filter(|c| c.validity.not_after > now)
                .map(|c| pem_of(&c.der));
            data.ca_bundle = kept
                .chain([ca.cert_pem.clone()])
                .collect::<String>()
                .into_bytes();
            data.ca_crt = ca.cert_pem.into_bytes();
            data.ca_key = ca.key_pem.into_bytes();
        }
        Plan::RenewServing(_) => {
            let serving = issue_serving(&material.signer, service, now, policy.serving_validity)?;
            data.tls_crt = serving.cert_pem.into_bytes();
            data.tls_key = serving.key_pem.into_bytes();
        }
        Plan::RetireOldCas => data.ca_bundle = bundle_pem([&material.ca.der]),
        Plan::RepairBundle => {
            let cas = material.bundle.iter().map(|c| &c.der);
            data.ca_bundle = bundle_pem(cas.chain([&material.ca.der]));
        }
    }
    Ok(Some(data))
}

#[cfg(test)]
mod tests;
