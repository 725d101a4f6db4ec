"""The node guard DaemonSet (CONTRACT §9): off by default; when on, host network, NET_ADMIN only,
every node, least RBAC, and flags its binary accepts."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import CASES, Case, objects, one
from test_binary_args import binary, run_version


def enabled(case_name: str) -> bool:
    return CASES[case_name].values.get("nodeGuard", {}).get("enabled", False)


GUARD_CASES = sorted(c for c in CASES if enabled(c))
on_guard_cases = pytest.mark.parametrize("guard_case", GUARD_CASES)


def daemonset(case_name: str) -> dict[str, Any]:
    return one(objects(case_name), "DaemonSet")


def guard_args(case_name: str) -> list[str]:
    (container,) = daemonset(case_name)["spec"]["template"]["spec"]["containers"]
    return container["args"]


def test_off_by_default_and_nothing_of_it_renders(case_name: str) -> None:
    objs = objects(case_name)
    guard = [o for o in objs if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "node-guard"]
    if not enabled(case_name):
        assert guard == []
    else:
        kinds = sorted(o["kind"] for o in guard)
        assert kinds == ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "Role", "RoleBinding", "ServiceAccount"]


@on_guard_cases
def test_runs_on_the_host_network_of_every_node_with_net_admin_only(guard_case: str) -> None:
    case_name = guard_case
    pod = daemonset(case_name)["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert not pod.get("hostPID") and not pod.get("hostIPC") and not pod.get("volumes")
    assert pod["tolerations"] == [{"operator": "Exists"}]
    priority = CASES[case_name].values["nodeGuard"].get("priorityClassName", "system-node-critical")
    assert pod.get("priorityClassName", "") == priority
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsUser"] == 0
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"responder": 15393, "metrics": 15394}
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"NODE_NAME": "spec.nodeName", "NODE_IP": "status.hostIP",
                   "POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert container["image"] == "podid/node-guard:0.1.0"


@on_guard_cases
def test_rbac_is_least(guard_case: str) -> None:
    case_name = guard_case
    objs = objects(case_name)
    name = daemonset(case_name)["metadata"]["name"]
    assert one(objs, "ClusterRole", name)["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    assert one(objs, "Role", name)["rules"] == [
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "resourceNames": [name], "verbs": ["get"]},
    ]
    assert one(objs, "ServiceAccount", name)["automountServiceAccountToken"] is False


@on_guard_cases
def test_flags_follow_the_values(guard_case: str) -> None:
    case_name = guard_case
    values = CASES[case_name].values
    args = guard_args(case_name)
    name = daemonset(case_name)["metadata"]["name"]
    assert args[0] == "run"
    assert f"--daemonset={name}" in args and "--namespace=$(POD_NAMESPACE)" in args
    assert "--proxy-image=podid/proxy:0.1.0" in args
    for selector in values.get("exceptions", []):
        assert f"--exception={selector}" in args
    for ns in values["nodeGuard"].get("allowNamespaces", []):
        assert f"--allow-namespace={ns}" in args
    aks = values["nodeGuard"].get("aksLabelNamespaces", ["kube-system"])
    expected = [f"--aks-label-namespace={ns}" for ns in aks] or ["--aks-label-namespace="]
    assert [a for a in args if a.startswith("--aks-label-namespace")] == expected


@on_guard_cases
def test_node_guard_args_are_accepted(guard_case: str) -> None:
    case_name = guard_case
    path = binary("PODID_NODE_GUARD_BIN", "podid-node-guard", "podid-node-guard")
    assert path is not None, "podid-node-guard could not be built"
    downward = {"$(NODE_NAME)": "aks-node-0", "$(NODE_IP)": "10.224.0.4", "$(POD_NAME)": "guard-x",
                "$(POD_NAMESPACE)": CASES[case_name].namespace}
    args = guard_args(case_name)
    for k, v in downward.items():
        args = [a.replace(k, v) for a in args]
    result = run_version(path, args)
    assert result.returncode == 0, f"podid-node-guard rejected the chart's args {args}:\n{result.stderr}"


@pytest.mark.parametrize("bad", [{"enabled": "yes"}, {"enabled": True, "allowNamespaces": ["Bad_NS"]},
                                 {"enabled": True, "resyncInterval": "soon"}, {"enabled": True, "typo": 1}])
def test_bad_node_guard_values_fail(bad: dict) -> None:
    with pytest.raises(Exception) as err:
        objects(Case({"nodeGuard": bad}))
    assert "nodeGuard" in str(err.value)
