"""Least privilege: pod and container hardening, and RBAC no wider than each binary needs."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import CASES, deployment, find, objects, one

COMPONENTS = ["webhook", "controller"]


def values(case_name: str) -> dict[str, Any]:
    return CASES[case_name].values


def controller_reads_node_file(case_name: str) -> bool:
    azure = values(case_name).get("azure", {})
    return not azure.get("cloudConfigSecret") and not azure.get("workloadIdentity", {}).get("clientID") \
        and azure.get("cloudConfigHostPath", "/etc/kubernetes/azure.json") != ""


@pytest.mark.parametrize("component", COMPONENTS)
def test_containers_are_hardened(case_name: str, component: str) -> None:
    pod = deployment(objects(case_name), component)["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert pod["automountServiceAccountToken"] is True  # both talk to the API server
    assert pod.get("initContainers") is None
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    root = component == "controller" and controller_reads_node_file(case_name)
    if root:
        # Only to read the node's root-only azure.json; documented in values.yaml.
        assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False
    else:
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    assert container["livenessProbe"]["httpGet"]["port"] == "metrics"


@pytest.mark.parametrize("component", COMPONENTS)
def test_host_paths_only_for_the_nodes_cloud_config(case_name: str, component: str) -> None:
    pod = deployment(objects(case_name), component)["spec"]["template"]["spec"]
    host_paths = [v for v in pod.get("volumes", []) if "hostPath" in v]
    if component == "controller" and controller_reads_node_file(case_name):
        assert host_paths == [
            {"name": "cloud-config", "hostPath": {"path": "/etc/kubernetes/azure.json", "type": "File"}}
        ]
        (mount,) = pod["containers"][0]["volumeMounts"]
        assert mount["readOnly"] is True
    else:
        assert host_paths == []
    for mount in pod["containers"][0].get("volumeMounts", []):
        assert mount["readOnly"] is True


def test_service_accounts_do_not_automount(case_name: str) -> None:
    accounts = find(objects(case_name), "ServiceAccount")
    # The webhook's and the controller's (and the node guard's when on); the proxy needs none,
    # injected pods keep theirs.
    guard = CASES[case_name].values.get("nodeGuard", {}).get("enabled", False)
    assert len(accounts) == 3 if guard else 2
    for account in accounts:
        assert account["automountServiceAccountToken"] is False


def test_webhook_availability(case_name: str) -> None:
    objs = objects(case_name)
    webhook_values = values(case_name).get("webhook", {})
    replicas = webhook_values.get("replicas", 2)
    dep = deployment(objs, "webhook")
    assert dep["spec"]["replicas"] == replicas
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = dep["spec"]["template"]["spec"]
    assert pod.get("priorityClassName", "") == webhook_values.get("priorityClassName", "system-cluster-critical")
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    pdbs = [p for p in find(objs, "PodDisruptionBudget") if p["metadata"]["name"] == dep["metadata"]["name"]]
    if replicas > 1:
        (pdb,) = pdbs
        assert pdb["spec"]["minAvailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    else:
        assert pdbs == []  # a single replica must not block node drains


def test_controller_leader_election(case_name: str) -> None:
    objs = objects(case_name)
    dep = deployment(objs, "controller")
    assert dep["spec"]["replicas"] == values(case_name).get("controller", {}).get("replicas", 2)
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    lease = next(a.split("=", 1)[1] for a in args if a.startswith("--leader-elect-lease-name="))
    assert "--leader-elect" in args and "--leader-elect-identity=$(POD_NAME)" in args
    role = one(objs, "Role", dep["metadata"]["name"])
    named = [r for r in role["rules"] if r.get("resourceNames") and "leases" in r["resources"]]
    assert named and named[0]["resourceNames"] == [lease]


# === RBAC ===


def rules(objs: list[dict], kind: str, name: str) -> list[dict]:
    return one(objs, kind, name)["rules"]


def test_no_wildcards_or_escalation(case_name: str) -> None:
    for obj in objects(case_name):
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in obj["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (obj["metadata"]["name"], rule)
            assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(rule["verbs"])
            if "resourceNames" not in rule:
                # Only `create` (which resourceNames cannot restrict) and reads are unnamed.
                assert set(rule["verbs"]) <= {"get", "list", "watch", "create"} or rule["resources"] in (
                    ["pods/status"], ["events"]
                ), rule


def test_webhook_rbac_is_least(case_name: str) -> None:
    objs = objects(case_name)
    name = deployment(objs, "webhook")["metadata"]["name"]
    mwc = one(objs, "MutatingWebhookConfiguration")["metadata"]["name"]
    identity_reads = {
        "apiGroups": ["aadpodidentity.k8s.io"],
        "resources": ["azureidentities", "azureidentitybindings"],
        "verbs": ["get", "list", "watch"],
    }
    self_mode = values(case_name).get("certs", {}).get("mode", "self") == "self"
    if self_mode:
        assert rules(objs, "ClusterRole", name) == [
            identity_reads,
            {
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingwebhookconfigurations"],
                "resourceNames": [mwc],
                "verbs": ["get", "update", "patch"],
            },
        ]
        assert rules(objs, "Role", name) == [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [f"{name}-tls"], "verbs": ["get", "update"]},
        ]
    else:
        assert rules(objs, "ClusterRole", name) == [identity_reads]
        assert find(objs, "Role", name) == []


def test_controller_rbac_is_least(case_name: str) -> None:
    objs = objects(case_name)
    name = deployment(objs, "controller")["metadata"]["name"]
    assert rules(objs, "ClusterRole", name) == [
        {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["aadpodidentity.k8s.io"],
            "resources": ["azureidentities", "azureidentitybindings"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    assert rules(objs, "Role", name) == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [name],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [f"{name}-state"], "verbs": ["get", "update"]},
    ]


def test_bindings_bind_only_podids_accounts(case_name: str) -> None:
    case = CASES[case_name]
    objs = objects(case_name)
    accounts = {a["metadata"]["name"] for a in find(objs, "ServiceAccount")}
    for obj in objs:
        if obj["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        assert obj["roleRef"]["name"] == obj["metadata"]["name"]
        (subject,) = obj["subjects"]
        assert subject == {"kind": "ServiceAccount", "name": obj["metadata"]["name"], "namespace": case.namespace}
        assert subject["name"] in accounts


def test_images(case_name: str) -> None:
    objs = objects(case_name)
    image = values(case_name).get("image", {})
    repo = image.get("repository", "podid")
    tag = image.get("tag", "0.1.0")
    for component in COMPONENTS:
        container = deployment(objs, component)["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == f"{repo}/{component}:{tag}"
    proxy = next(
        a.split("=", 1)[1]
        for a in deployment(objs, "webhook")["spec"]["template"]["spec"]["containers"][0]["args"]
        if a.startswith("--proxy-image=")
    )
    digest = image.get("proxy", {}).get("digest")
    assert proxy == (f"{repo}/proxy@{digest}" if digest else f"{repo}/proxy:{tag}")
