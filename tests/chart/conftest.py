"""Renders the chart with the real Helm engine and shares the results between tests.

Helm is Helm 4's Go SDK, loaded from the `helm-python-sdk` wheel (a shared
library called through ctypes): no `helm` binary, no cluster, no network.
`Chart.render` is what `helm template` / `helm install --dry-run=client` run:
values are coalesced with values.yaml and checked against values.schema.json
before any template runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "chart"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
NAMESPACE = "podid-system"
RELEASE = "podid"

GUID = "6f1c3a52-8d2e-4b7a-9c11-2f0e5d4b3a21"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
IDENTITY_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/mc_rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/agentpool"
)


@dataclass(frozen=True)
class Case:
    """One way to install the chart: values plus release name and namespace."""

    values: dict[str, Any] = field(default_factory=dict)
    release: str = RELEASE
    namespace: str = NAMESPACE


# The matrix of installs every test runs over. Each has a golden file.
CASES: dict[str, Case] = {
    "default": Case(),
    "cert-manager": Case({"certs": {"mode": "cert-manager"}}),
    "cert-manager-issuer": Case(
        {
            "certs": {
                "mode": "cert-manager",
                "certManager": {
                    "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
                },
            }
        }
    ),
    "crds-off": Case({"crds": {"install": False}}),
    "native-sidecars-never": Case({"nativeSidecars": "never"}),
    "pods-without-identity-skip": Case({"podsWithoutIdentity": "skip"}),
    "strict-exceptions": Case(
        {"strict": True, "exceptions": ["app=legacy", "tier in (batch,cron),!canary"]}
    ),
    "immutable-identities": Case({"immutableIdentities": [IDENTITY_ID, GUID]}),
    "service-monitor": Case(
        {"metrics": {"serviceMonitor": {"enabled": True, "scrapeTimeout": "10s", "labels": {"release": "prom"}}}}
    ),
    "workload-identity": Case(
        {
            "azure": {
                "workloadIdentity": {"clientID": GUID, "tenantID": TENANT},
                "armEndpoint": "https://management.usgovcloudapi.net/",
                "authorityHost": "https://login.microsoftonline.us/",
            }
        }
    ),
    "cloud-config-secret": Case({"azure": {"cloudConfigSecret": "podid-azure-config"}}),
    "failure-policy-ignore": Case({"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 10}}),
    "replicas-3": Case({"webhook": {"replicas": 3}, "controller": {"replicas": 3}}),
    "single-replica": Case({"webhook": {"replicas": 1}, "controller": {"replicas": 1}}),
    "custom-images-and-proxy": Case(
        {
            "image": {
                "repository": "registry.example/mirror/podid",
                "tag": "1.2.3",
                "pullSecrets": ["mirror-pull"],
                "proxy": {"name": "proxy", "digest": "sha256:" + "ab" * 32},
            },
            "proxy": {
                "imagePullPolicy": "Always",
                "blockOtherImdsPaths": True,
                "readyTimeout": "2m",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            },
            "logging": {"format": "plain", "level": "info,podid_webhook=debug"},
        }
    ),
    "node-guard": Case(
        {
            "nodeGuard": {"enabled": True, "allowNamespaces": ["gatekeeper-system"], "eventInterval": "10m"},
            "exceptions": ["app=legacy"],
        }
    ),
    "node-guard-no-aks-label": Case(
        {"nodeGuard": {"enabled": True, "aksLabelNamespaces": [], "priorityClassName": ""}},
        release="identity",
        namespace="security",
    ),
    "other-release-name": Case({"webhook": {"priorityClassName": ""}}, release="identity", namespace="security"),
}


@functools.lru_cache(maxsize=1)
def chart() -> helm.Chart:
    return helm.Chart.load(str(CHART_DIR))


@functools.lru_cache(maxsize=None)
def _render_cached(key: str) -> dict[str, str]:
    case = CASES[key]
    return chart().render(case.values, name=case.release, namespace=case.namespace, is_install=True)


def render(case: Case | str) -> dict[str, str]:
    """Template path → rendered text (NOTES.txt included)."""
    if isinstance(case, str):
        return dict(_render_cached(case))
    return chart().render(case.values, name=case.release, namespace=case.namespace, is_install=True)


def objects(case: Case | str) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object, in template-path order."""
    rendered = render(case)
    out = []
    for path in sorted(rendered):
        if not path.endswith(".yaml"):
            continue
        out.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return out


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployment(objs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    found = [
        o
        for o in find(objs, "Deployment")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1, f"expected one {component} Deployment"
    return found[0]


def container_args(objs: list[dict[str, Any]], component: str) -> list[str]:
    containers = deployment(objs, component)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]["args"]


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def case_name(request: pytest.FixtureRequest) -> str:
    return request.param
