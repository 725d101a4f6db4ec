//! §3 "Warned": containers that could remove the redirect, warned or (strict) denied.

use super::*;

fn pod_with_container_security(security: Value) -> Value {
    let mut pod = pod_naming("storage-reader");
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "tool", "image": "tool", "securityContext": security}));
    pod
}

fn strict() -> InjectConfig {
    InjectConfig {
        strict: true,
        ..native()
    }
}

#[test]
fn privileged_or_net_admin_container_in_a_pod_with_identities_is_warned_and_injected() {
    for security in [
        json!({"privileged": true}),
        json!({"capabilities": {"add": ["NET_ADMIN"]}}),
        json!({"capabilities": {"add": ["CAP_NET_ADMIN"]}}),
        json!({"capabilities": {"add": ["net_admin"]}}),
        json!({"capabilities": {"add": ["SYS_TIME", "ALL"]}}),
    ] {
        let out = inject(&pod_with_container_security(security.clone()), &native());
        assert_eq!(out.warnings.len(), 1, "{security}: {:?}", out.warnings);
        let w = &out.warnings[0];
        assert!(
            w.starts_with(r#"pod "apps/web": container "tool" is privileged or adds NET_ADMIN"#),
            "{security}: {w}"
        );
    }
}

#[test]
fn capabilities_that_cannot_change_the_network_are_not_warned() {
    for security in [
        json!({"privileged": false}),
        json!({"capabilities": {"add": ["NET_RAW", "NET_BIND_SERVICE"], "drop": ["ALL"]}}),
        json!({"capabilities": {"drop": ["NET_ADMIN"]}}),
    ] {
        let out = inject(&pod_with_container_security(security.clone()), &native());
        assert!(out.warnings.is_empty(), "{security}: {:?}", out.warnings);
    }
}

#[test]
fn privileged_init_container_is_warned_too() {
    let mut pod = pod_naming("storage-reader");
    pod["spec"]["initContainers"] =
        json!([{"name": "sysctl", "image": "busybox", "securityContext": {"privileged": true}}]);
    let out = inject(&pod, &legacy());
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains(r#"container "sysctl""#),
        "{:?}",
        out.warnings
    );
}

#[test]
fn every_risky_container_gets_its_own_warning() {
    let pod = fixture(include_str!(
        "../../../tests/fixtures/pods/warn-privileged.json"
    ));
    let out = inject(&pod, &native());
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].contains(r#"container "netshoot""#));
    // Istio's init container adds NET_ADMIN.
    let out = inject(&fixture(ISTIO), &native());
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].contains(r#"container "istio-init""#));
}

#[test]
fn strict_mode_denies_what_would_be_warned_naming_pod_and_containers() {
    let pod = fixture(include_str!(
        "../../../tests/fixtures/pods/warn-privileged.json"
    ));
    let (reason, message) = deny(&pod, &strict());
    assert_eq!(reason, DenyReason::Strict);
    assert!(
        message.starts_with(
            r#"pod "apps/net-debug": container "netshoot" is privileged or adds NET_ADMIN"#
        ),
        "{message}"
    );
    let (reason, message) = deny(&fixture(ISTIO), &strict());
    assert_eq!(reason, DenyReason::Strict);
    assert!(
        message.contains(r#"pod "apps/checkout-6c4f9b7d8-" (generateName)"#),
        "{message}"
    );
}

#[test]
fn pod_without_identity_gets_no_warning_and_is_not_denied_in_strict_mode() {
    let mut pod = fixture(BARE);
    pod["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    for cfg in [native(), strict()] {
        let out = inject(&pod, &cfg);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }
}

#[test]
fn podids_own_net_admin_init_container_is_never_warned_about() {
    let cfg = strict();
    let out = inject(&pod_naming("storage-reader"), &cfg);
    assert!(out.warnings.is_empty());
    assert_eq!(
        skip(&out.pod, &cfg),
        (SkipReason::AlreadyInjected, Vec::new())
    );
}
