//! §1: pods that are admitted untouched.

use super::*;
use crate::selector::LabelSelector;

#[test]
fn pods_in_system_namespaces_are_never_injected_even_when_naming_an_identity() {
    let pod = pod_naming("storage-reader");
    for ns in ["kube-system", "kube-public", "kube-node-lease"] {
        let decision = plan(&PodView::new(&pod, ns), &index(), &native());
        assert_eq!(
            decision,
            Decision::Skip {
                reason: SkipReason::ExcludedNamespace,
                warnings: Vec::new()
            },
            "{ns}"
        );
    }
}

#[test]
fn pods_in_the_release_namespace_are_never_injected() {
    let cfg = InjectConfig {
        excluded_namespaces: vec!["podid-system".into()],
        ..native()
    };
    let pod = pod_naming("storage-reader");
    let decision = plan(&PodView::new(&pod, "podid-system"), &index(), &cfg);
    assert!(
        matches!(
            decision,
            Decision::Skip {
                reason: SkipReason::ExcludedNamespace,
                ..
            }
        ),
        "{decision:?}"
    );
    // The same configuration still injects other namespaces.
    inject(&pod, &cfg);
}

#[test]
fn pod_labelled_inject_disabled_is_skipped_even_with_an_identity() {
    let pod = pod_with(
        json!({"podid.io/inject": "disabled"}),
        json!({"podid.io/identity": "storage-reader"}),
    );
    assert_eq!(skip(&pod, &native()), (SkipReason::OptedOut, Vec::new()));
}

#[test]
fn pod_label_inject_with_another_value_does_not_opt_out() {
    let pod = pod_with(
        json!({"podid.io/inject": "enabled"}),
        json!({"podid.io/identity": "storage-reader"}),
    );
    let out = inject(&pod, &native());
    assert_eq!(out.pod["metadata"]["labels"]["podid.io/inject"], "enabled");
}

#[test]
fn mirror_pod_is_skipped() {
    let pod = pod_with(
        json!({}),
        json!({"kubernetes.io/config.mirror": "3f2a9c1e7b", "podid.io/identity": "storage-reader"}),
    );
    assert_eq!(skip(&pod, &native()), (SkipReason::MirrorPod, Vec::new()));
}

#[test]
fn aks_managed_pod_is_skipped_but_other_managers_are_not() {
    let aks = pod_with(json!({"kubernetes.azure.com/managedby": "aks"}), json!({}));
    assert_eq!(skip(&aks, &native()), (SkipReason::AksManaged, Vec::new()));
    let other = pod_with(json!({"kubernetes.azure.com/managedby": "sig"}), json!({}));
    inject(&other, &native());
}

#[test]
fn pod_matching_an_exception_selector_is_skipped_and_the_selector_is_named() {
    let cfg = InjectConfig {
        exceptions: vec![
            LabelSelector::parse("team=platform").unwrap(),
            LabelSelector::parse("app in (batch,cron),!podid.example/keep").unwrap(),
        ],
        ..native()
    };
    let matching = pod_with(
        json!({"app": "cron"}),
        json!({"podid.io/identity": "storage-reader"}),
    );
    assert_eq!(
        skip(&matching, &cfg),
        (
            SkipReason::Exception("app in (batch,cron),!podid.example/keep".into()),
            Vec::new()
        )
    );
    let not_matching = pod_with(
        json!({"app": "cron", "podid.example/keep": ""}),
        json!({"podid.io/identity": "storage-reader"}),
    );
    inject(&not_matching, &cfg);
}

#[test]
fn pod_without_identity_is_skipped_when_pods_without_identity_is_skip() {
    let cfg = InjectConfig {
        pods_without_identity: PodsWithoutIdentity::Skip,
        ..native()
    };
    let pod = fixture(STATEFULSET);
    assert_eq!(skip(&pod, &cfg), (SkipReason::NoIdentity, Vec::new()));
    // A pod that names an identity is still injected.
    let out = inject(&fixture(DEPLOYMENT), &cfg);
    assert_eq!(out.status.identities.len(), 2);
}

#[test]
fn host_network_pod_without_identity_is_skipped_with_a_warning_naming_the_pod() {
    let pod = fixture(include_str!(
        "../../../tests/fixtures/pods/skip-host-network.json"
    ));
    for cfg in both_layouts() {
        let (reason, warnings) = skip(&pod, &cfg);
        assert_eq!(reason, SkipReason::HostNetwork);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(r#"pod "apps/node-exporter-" (generateName)"#),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("hostNetwork"), "{warnings:?}");
    }
}

#[test]
fn skip_reasons_have_stable_metric_labels() {
    let kinds: Vec<&str> = [
        SkipReason::ExcludedNamespace,
        SkipReason::OptedOut,
        SkipReason::MirrorPod,
        SkipReason::AksManaged,
        SkipReason::Exception("anything=at-all".into()),
        SkipReason::NoIdentity,
        SkipReason::HostNetwork,
        SkipReason::AlreadyInjected,
    ]
    .iter()
    .map(SkipReason::kind)
    .collect();
    assert_eq!(
        kinds,
        [
            "excluded_namespace",
            "opted_out",
            "mirror_pod",
            "aks_managed",
            "exception",
            "no_identity",
            "host_network",
            "already_injected"
        ]
    );
}
