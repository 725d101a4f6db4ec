//! Table tests of the guard's decisions: who reaches IMDS, and the refusal corpus.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

const PROXY_IMAGE: &str = "podid/proxy:0.1.0";

fn status() -> String {
    json!({"version": 1, "layout": "native", "initContainers": ["podid-init", "podid-proxy"],
           "containers": [], "volumes": [], "identities": []})
    .to_string()
}

/// An injected pod (native layout) whose proxy is running.
fn injected(name: &str, ip: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}"),
                     "labels": {"podid.io/injected": "true"},
                     "annotations": {"podid.io/status": status()}},
        "spec": {"initContainers": [{"name": "podid-init", "image": PROXY_IMAGE},
                                    {"name": "podid-proxy", "image": PROXY_IMAGE, "restartPolicy": "Always"}],
                 "containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "initContainerStatuses": [
                       {"name": "podid-init", "state": {"terminated": {"exitCode": 0}}},
                       {"name": "podid-proxy", "state": {"running": {"startedAt": "2026-12-04T00:00:00Z"}}}]}
    })
}

fn plain(namespace: &str, name: &str, ip: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": namespace, "labels": labels},
           "spec": {"containers": [{"name": "app"}]},
           "status": {"phase": "Running", "podIP": ip}})
}

fn policy() -> GuardPolicy {
    GuardPolicy {
        exceptions: vec![LabelSelector::parse("app=legacy-batch").unwrap()],
        allowed_namespaces: ["gatekeeper-system".to_owned()].into(),
        aks_label_namespaces: ["kube-system".to_owned()].into(),
        proxy_image: Some(PROXY_IMAGE.into()),
    }
}

fn verdict(pod: &Value) -> Verdict {
    GuardPod::from_json(pod, 0, &policy()).unwrap().verdict
}

/// `pod` with the field at `pointer` set (its parent must exist).
fn edit(mut pod: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let key = key.replace("~1", "/");
    match pod.pointer_mut(parent).unwrap() {
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        other => _ = other.as_object_mut().unwrap().insert(key, value),
    }
    pod
}

#[test]
fn allowed_pods_and_why() {
    let legacy = {
        let mut p = injected("legacy", "10.0.0.2");
        let proxy = p["spec"]["initContainers"][1].take();
        p["spec"]["initContainers"] = json!([p["spec"]["initContainers"][0].clone()]);
        p["spec"]["containers"] = json!([proxy, {"name": "app"}]);
        p["status"]["containerStatuses"] = p["status"]["initContainerStatuses"].take();
        p
    };
    let aks = json!({"kubernetes.azure.com/managedby": "aks"});
    let table = [
        (injected("web", "10.0.0.1"), AllowReason::Injected),
        (legacy, AllowReason::Injected),
        (
            plain("kube-system", "coredns", "10.0.0.3", aks),
            AllowReason::AksManaged,
        ),
        (
            plain("gatekeeper-system", "gk", "10.0.0.4", json!({})),
            AllowReason::Namespace,
        ),
        (
            plain("batch", "job", "10.0.0.5", json!({"app": "legacy-batch"})),
            AllowReason::Exception,
        ),
    ];
    for (pod, want) in table {
        assert_eq!(verdict(&pod), Verdict::Allow(want), "{pod}");
    }
}

/// What is refused is part of the product: every way a pod can look injected without being so.
#[test]
fn refusal_corpus() {
    let aks = json!({"kubernetes.azure.com/managedby": "aks"});
    let web = || injected("web", "10.0.0.1");
    let table = [
        (
            plain("apps", "plain", "10.0.0.9", json!({})),
            BlockReason::NotInjected,
        ),
        (
            edit(web(), "/metadata/labels/podid.io~1injected", json!("yes")),
            BlockReason::NotInjected,
        ),
        (
            edit(web(), "/metadata/labels/podid.io~1injected", json!(true)),
            BlockReason::NotInjected,
        ),
        // Anyone can write the AKS label: outside kube-system it counts for nothing.
        (
            plain("apps", "fake-aks", "10.0.0.9", aks),
            BlockReason::NotInjected,
        ),
        (
            plain("apps", "near", "10.0.0.9", json!({"app": "legacy-batch-2"})),
            BlockReason::NotInjected,
        ),
        (
            edit(web(), "/metadata/annotations", json!({})),
            BlockReason::StatusUnreadable,
        ),
        (
            edit(
                web(),
                "/metadata/annotations/podid.io~1status",
                json!("{not json"),
            ),
            BlockReason::StatusUnreadable,
        ),
        (
            edit(web(), "/metadata/annotations/podid.io~1status", json!("{}")),
            BlockReason::StatusUnreadable,
        ),
        (
            edit(web(), "/spec/initContainers/1/name", json!("podid-proxy2")),
            BlockReason::NoProxy,
        ),
        (
            edit(
                web(),
                "/spec/initContainers/1/image",
                json!("evil/proxy:0.1.0"),
            ),
            BlockReason::NoProxy,
        ),
        (
            edit(web(), "/spec/initContainers", json!("not a list")),
            BlockReason::NoProxy,
        ),
        (
            edit(
                web(),
                "/status/initContainerStatuses/1/state",
                json!({"waiting": {}}),
            ),
            BlockReason::ProxyNotRunning,
        ),
        (
            edit(web(), "/status/initContainerStatuses/1/name", json!("app")),
            BlockReason::ProxyNotRunning,
        ),
        (
            edit(web(), "/status/initContainerStatuses", json!(null)),
            BlockReason::ProxyNotRunning,
        ),
        // A running status reported for a regular container of that name does not prove the native sidecar.
        (
            edit(
                edit(
                    web(),
                    "/status/containerStatuses",
                    web()["status"]["initContainerStatuses"].clone(),
                ),
                "/status/initContainerStatuses",
                json!([]),
            ),
            BlockReason::ProxyNotRunning,
        ),
    ];
    for (pod, want) in table {
        assert_eq!(verdict(&pod), Verdict::Block(want), "{pod}");
    }
}

#[test]
fn host_network_and_finished_pods_are_outside_the_set() {
    let host = edit(injected("h", "10.1.0.4"), "/spec/hostNetwork", json!(true));
    assert_eq!(verdict(&host), Verdict::HostNetwork);
    let done = edit(
        injected("d", "10.0.0.1"),
        "/status/phase",
        json!("Succeeded"),
    );
    assert_eq!(verdict(&done), Verdict::Finished);
    let pods: Vec<GuardPod> = [host, done]
        .iter()
        .map(|p| GuardPod::from_json(p, 0, &policy()).unwrap())
        .collect();
    assert_eq!(AllowedSet::from_pods(&pods), AllowedSet::default());
}

#[test]
fn an_address_claimed_by_an_allowed_and_a_blocked_pod_stays_out() {
    let pods: Vec<GuardPod> = [
        injected("web", "10.0.0.1"),
        plain("apps", "reused", "10.0.0.1", json!({})),
        injected("api", "10.0.0.2"),
    ]
    .iter()
    .map(|p| GuardPod::from_json(p, 0, &policy()).unwrap())
    .collect();
    let set = AllowedSet::from_pods(&pods);
    assert_eq!(set.allowed, ["10.0.0.2".parse().unwrap()].into());
    let owner = &set.owners[&"10.0.0.1".parse().unwrap()];
    assert_eq!(
        (owner.to_string(), owner.verdict),
        (
            "apps/reused".to_owned(),
            Verdict::Block(BlockReason::NotInjected)
        )
    );
}

#[test]
fn pod_ips_prefer_pod_ips_and_skip_ipv6_and_garbage() {
    let pod = json!({"metadata": {"name": "d", "namespace": "n"},
        "status": {"podIP": "10.9.9.9", "podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.7"}, {"ip": 7}, "x"]}});
    assert_eq!(
        GuardPod::from_json(&pod, 0, &policy()).unwrap().ips,
        ["10.0.0.7".parse::<Ipv4Addr>().unwrap()]
    );
    let pending =
        json!({"metadata": {"name": "p", "namespace": "n"}, "status": {"phase": "Pending"}});
    assert!(
        GuardPod::from_json(&pending, 0, &policy())
            .unwrap()
            .ips
            .is_empty()
    );
}

#[test]
fn pods_files_in_every_shape_parse_and_bad_ones_name_the_pod() {
    let one = serde_json::to_string(&injected("web", "10.0.0.1")).unwrap();
    for text in [
        format!("[{one}]"),
        format!("{{\"kind\": \"List\", \"items\": [{one}]}}"),
        format!("---\n{one}\n---\n"),
    ] {
        let pods = parse_pods_file(&text, &policy()).unwrap();
        assert_eq!(pods.len(), 1, "{text}");
        assert!(pods[0].allowed());
    }
    assert!(parse_pods_file("", &policy()).unwrap().is_empty());
    let err = parse_pods_file("[{\"metadata\": {\"name\": \"x\"}}]", &policy()).unwrap_err();
    assert_eq!(err.to_string(), "pod #0: metadata.namespace is missing");
    let err = parse_pods_file("[1]", &policy()).unwrap_err();
    assert_eq!(err.to_string(), "pod #0: not a JSON object");
    assert!(matches!(
        parse_pods_file("[", &policy()),
        Err(GuardError::Syntax(_))
    ));
}

#[test]
fn an_injected_pod_whose_identities_are_all_federated_is_blocked() {
    let with_identities = |credentials: &[&str]| {
        let identities: Vec<Value> = credentials
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({"name": format!("id-{i}"), "type": 0, "clientID": format!("c{i}"),
                                 "resourceID": "", "credential": c})
            })
            .collect();
        let mut status: Value = serde_json::from_str(&status()).unwrap();
        status["identities"] = Value::Array(identities);
        edit(
            injected("f", "10.1.0.9"),
            "/metadata/annotations/podid.io~1status",
            json!(status.to_string()),
        )
    };
    assert_eq!(
        verdict(&with_identities(&["federated", "federated"])),
        Verdict::Block(BlockReason::Federated)
    );
    assert_eq!(BlockReason::Federated.kind(), "federated");
    // One managed identity needs IMDS; a pod without identities keeps IMDS's other paths.
    for mixed in [&["federated", ""][..], &[]] {
        assert_eq!(
            verdict(&with_identities(mixed)),
            Verdict::Allow(AllowReason::Injected),
            "{mixed:?}"
        );
    }
}
