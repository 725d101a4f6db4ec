//! The rotation decisions, step by step and over a whole decade.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::*;
use crate::material::{CaCert, verifies};

const MINUTE: Duration = Duration::from_secs(60);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn svc() -> ServiceName {
    ServiceName::new("podid-webhook", "podid-system")
}

fn policy() -> RotationPolicy {
    RotationPolicy::default()
}

fn fresh_at(now: SystemTime) -> Material {
    fresh(&policy(), &svc(), now).unwrap().parse().unwrap()
}

fn after(material: &Material, decided: Plan, now: SystemTime) -> Material {
    let data = apply(decided, &policy(), &svc(), now, material)
        .unwrap()
        .unwrap();
    data.parse().unwrap()
}

fn ders(cas: &[CaCert]) -> Vec<CertificateDer<'static>> {
    cas.iter().map(|c| c.der.clone()).collect()
}

fn decide(material: &Material, now: SystemTime, published: bool) -> Plan {
    plan(&policy(), &svc(), now, material, published)
}

/// A Secret whose CA was staged at `staged` (the old CA issued at t0).
fn staged_at(staged: SystemTime) -> (Material, Material) {
    let old = fresh_at(t0());
    let old = after(&old, Plan::RenewServing(RenewReason::Due), staged);
    let staged = after(&old, Plan::StageCa, staged);
    (old, staged)
}

#[test]
fn fresh_secret_trusts_one_ca_that_signed_the_serving_certificate() {
    let material = fresh_at(t0());
    assert_eq!(
        ders(&material.bundle),
        std::slice::from_ref(&material.ca.der)
    );
    assert!(material.serving_verifies(std::slice::from_ref(&material.ca.der), &svc().host(), t0()));
    assert_eq!(decide(&material, t0(), true), Plan::Keep);
    assert_eq!(material.ca.validity.not_after, t0() + policy().ca_validity);
}

#[test]
fn serving_certificate_is_renewed_at_two_thirds_of_its_life() {
    let material = fresh_at(t0());
    let due = renew_time(&material);
    let life = policy().serving_validity + crate::issue::BACKDATE;
    assert_eq!(due, t0() - crate::issue::BACKDATE + life * 2 / 3);
    assert_eq!(decide(&material, due - MINUTE, true), Plan::Keep);
    let decided = decide(&material, due, true);
    assert_eq!(decided, Plan::RenewServing(RenewReason::Due));
    let renewed = after(&material, decided, due);
    assert_eq!(renewed.ca, material.ca);
    assert_ne!(renewed.leaf(), material.leaf());
    assert_eq!(decide(&renewed, due, true), Plan::Keep);
}

#[test]
fn renewal_under_the_same_ca_does_not_wait_for_publication() {
    let material = fresh_at(t0());
    let due = renew_time(&material);
    assert_eq!(
        decide(&material, due, false),
        Plan::RenewServing(RenewReason::Due)
    );
}

#[test]
fn new_ca_is_staged_when_less_than_a_year_of_the_old_is_left() {
    let material = fresh_at(t0());
    let stage_at = material.ca.validity.not_after - policy().ca_renew_before;
    let renewed = after(
        &material,
        Plan::RenewServing(RenewReason::Due),
        stage_at - MINUTE,
    );
    assert_eq!(decide(&renewed, stage_at - MINUTE, true), Plan::Keep);
    assert_eq!(decide(&renewed, stage_at, true), Plan::StageCa);
}

#[test]
fn staged_ca_joins_the_bundle_while_the_old_ca_keeps_serving() {
    let at = t0() + 1_500 * DAY;
    let (old, staged) = staged_at(at);
    assert_ne!(staged.ca, old.ca);
    assert_eq!(
        ders(&staged.bundle),
        [old.ca.der.clone(), staged.ca.der.clone()]
    );
    assert_eq!(staged.leaf(), old.leaf());
    assert!(staged.serving_verifies(&ders(&staged.bundle), &svc().host(), at));
    assert_eq!(staged.ca.validity.not_after, at + policy().ca_validity);
}

#[test]
fn serving_switches_to_the_new_ca_only_once_published_and_settled() {
    let at = t0() + 1_500 * DAY;
    let (_, staged) = staged_at(at);
    let grace = policy().publish_grace;
    assert_eq!(decide(&staged, at, false), Plan::AwaitPublication);
    assert_eq!(decide(&staged, at + grace, false), Plan::AwaitPublication);
    assert_eq!(
        decide(&staged, at + grace - MINUTE, true),
        Plan::AwaitPublication
    );
    let decided = decide(&staged, at + grace, true);
    assert_eq!(decided, Plan::RenewServing(RenewReason::NewCa));
    let switched = after(&staged, decided, at + grace);
    assert!(switched.serving_verifies(
        std::slice::from_ref(&switched.ca.der),
        &svc().host(),
        at + grace
    ));
    assert_eq!(switched.bundle, staged.bundle, "the old CA stays trusted");
}

#[test]
fn old_ca_is_retired_one_overlap_after_the_switch() {
    let at = t0() + 1_500 * DAY;
    let (old, staged) = staged_at(at);
    let switch = at + policy().publish_grace;
    let switched = after(&staged, Plan::RenewServing(RenewReason::NewCa), switch);
    let retire = switch + policy().overlap;
    assert_eq!(decide(&switched, retire - MINUTE, true), Plan::Keep);
    assert_eq!(decide(&switched, retire, true), Plan::RetireOldCas);
    let retired = after(&switched, Plan::RetireOldCas, retire);
    assert_eq!(
        ders(&retired.bundle),
        std::slice::from_ref(&switched.ca.der)
    );
    assert!(!retired.bundle.iter().any(|c| c.der == old.ca.der));
    assert_eq!(decide(&retired, retire, true), Plan::Keep);
}

#[test]
fn certificate_for_another_service_is_renewed_without_waiting() {
    let material = fresh_at(t0());
    let other = ServiceName::new("renamed", "podid-system");
    let decided = plan(&policy(), &other, t0(), &material, false);
    assert_eq!(decided, Plan::RenewServing(RenewReason::Invalid));
    let renewed = apply(decided, &policy(), &other, t0(), &material)
        .unwrap()
        .unwrap();
    let renewed = renewed.parse().unwrap();
    assert!(renewed.serving_verifies(std::slice::from_ref(&renewed.ca.der), &other.host(), t0()));
}

#[test]
fn certificate_missing_some_service_names_is_renewed() {
    let material = fresh_at(t0());
    let key =
        rcgen::KeyPair::from_pem(std::str::from_utf8(&material.data.ca_key).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(&material.ca.der, key).unwrap();
    let params = rcgen::CertificateParams::new(vec![svc().host()]).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    let mut data = material.data.clone();
    data.tls_crt = leaf.pem().into_bytes();
    data.tls_key = leaf_key.serialize_pem().into_bytes();
    let partial = data.parse().unwrap();
    assert_eq!(
        decide(&partial, t0(), true),
        Plan::RenewServing(RenewReason::Names)
    );
}

#[test]
fn expired_serving_certificate_is_renewed_even_if_nothing_is_published() {
    let material = fresh_at(t0());
    let later = material.serving_validity.not_after + MINUTE;
    assert_eq!(
        decide(&material, later, false),
        Plan::RenewServing(RenewReason::Invalid)
    );
}

#[test]
fn unreadable_bundle_is_repaired_from_the_signing_ca() {
    let mut data = fresh_at(t0()).data;
    data.ca_bundle = b"not PEM at all".to_vec();
    let material = data.parse().unwrap();
    assert!(material.bundle.is_empty());
    assert_eq!(decide(&material, t0(), true), Plan::RepairBundle);
    let repaired = after(&material, Plan::RepairBundle, t0());
    assert_eq!(
        ders(&repaired.bundle),
        std::slice::from_ref(&material.ca.der)
    );
}

#[test]
fn bundle_without_the_signing_ca_gets_it_added() {
    let foreign = fresh_at(t0());
    let mut data = fresh_at(t0()).data;
    data.ca_bundle = foreign.data.ca_crt.clone();
    let material = data.parse().unwrap();
    assert_eq!(decide(&material, t0(), true), Plan::RepairBundle);
    let repaired = after(&material, Plan::RepairBundle, t0());
    assert_eq!(
        ders(&repaired.bundle),
        [foreign.ca.der.clone(), material.ca.der.clone()]
    );
}

#[test]
fn stage_drops_expired_cas_from_the_bundle() {
    let long_gone = fresh_at(t0() - 6 * YEAR);
    let mut data = fresh_at(t0() + 1_500 * DAY).data;
    let current = CertificateDer::from_pem_slice(&data.ca_crt).unwrap();
    data.ca_bundle = bundle_pem([&long_gone.ca.der, &current]);
    let material = data.parse().unwrap();
    let staged = after(&material, Plan::StageCa, t0() + 1_500 * DAY);
    assert_eq!(ders(&staged.bundle), [current, staged.ca.der.clone()]);
}

#[test]
fn plan_kinds_are_distinct_and_only_actions_write() {
    use RenewReason::*;
    let plans = [
        Plan::Keep,
        Plan::AwaitPublication,
        Plan::StageCa,
        Plan::RenewServing(Due),
        Plan::RenewServing(NewCa),
        Plan::RenewServing(Names),
        Plan::RenewServing(Invalid),
        Plan::RetireOldCas,
        Plan::RepairBundle,
    ];
    let kinds: std::collections::HashSet<_> = plans.iter().map(Plan::kind).collect();
    assert_eq!(kinds.len(), plans.len());
    assert!(!Plan::Keep.writes() && !Plan::AwaitPublication.writes());
    assert!(plans[2..].iter().all(Plan::writes));
}

/// Ten years in one-day steps, publishing after every pass as the manager
/// does: the certificate served is always trusted by the bundle the API
/// server had before the pass, and by the one it gets after.
#[test]
fn a_decade_of_rotation_never_serves_what_the_published_bundle_does_not_trust() {
    let host = svc().host();
    let mut now = t0();
    let mut material = fresh_at(now);
    let mut published = ders(&material.bundle);
    let (mut cas, mut leaves, mut max_bundle) = (vec![material.ca.der.clone()], 1, 1);
    while now < t0() + 10 * YEAR {
        now += DAY;
        let ca_published = published.contains(&material.ca.der);
        let decided = decide(&material, now, ca_published);
        if decided.writes() {
            material = after(&material, decided, now);
        }
        assert!(
            verifies(material.leaf(), &published, &host, now),
            "at {now:?} after {decided:?} the served certificate is not trusted by the published bundle"
        );
        published = ders(&material.bundle);
        assert!(verifies(material.leaf(), &published, &host, now));
        assert!(!matches!(
            decided,
            Plan::RenewServing(RenewReason::Invalid | RenewReason::Names)
        ));
        if !cas.contains(&material.ca.der) {
            cas.push(material.ca.der.clone());
        }
        leaves += usize::from(matches!(decided, Plan::RenewServing(_)));
        max_bundle = max_bundle.max(published.len());
    }
    assert_eq!(cas.len(), 3, "CAs staged at 4 and 8 years");
    assert!(leaves >= 15, "{leaves} serving certificates");
    assert_eq!(max_bundle, 2);
    assert_eq!(published.len(), 1, "the last old CA was retired");
}
