"""Rendered manifests: golden snapshots, Kubernetes schemas 1.29 → newest, helm lint.

Golden files: tests/chart/golden/<case>.yaml. A difference fails the test with
a diff; `UPDATE_GOLDEN=1 pytest tests/chart` rewrites them, and the change is
reviewed like code.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from typing import Any

import helm_python as helm
import kubernetes_validate.utils as kv
import pytest
from packaging.version import Version

from conftest import CASES, CHART_DIR, GOLDEN_DIR, objects, render

MIN_KUBERNETES = Version("1.29")

# Instances of other projects' CRDs: kubernetes-validate has no schema for them.
# They are checked here to be exactly these kinds, and nothing else is skipped.
FOREIGN_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
}

# kubernetes-validate reads its schema files from disk on every call.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)


def kubernetes_versions() -> list[str]:
    versions = sorted({Version(v) for v in kv.all_versions()})
    chosen = [f"{v.major}.{v.minor}.0" for v in versions if v >= MIN_KUBERNETES]
    assert chosen, "kubernetes-validate ships no schema for Kubernetes >= 1.29"
    return chosen


def golden_text(case: str) -> str:
    rendered = render(case)
    parts = []
    for path in sorted(rendered):
        text = rendered[path].strip()
        if not path.endswith(".yaml") or not text:
            continue
        parts.append(f"---\n# Source: {path}\n{text}\n")
    return "".join(parts)


def test_golden(case_name: str) -> None:
    path = GOLDEN_DIR / f"{case_name}.yaml"
    actual = golden_text(case_name)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"{path} missing: run UPDATE_GOLDEN=1 pytest tests/chart and review it"
    expected = path.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"golden/{case_name}.yaml",
                tofile="rendered",
            )
        )
        pytest.fail(f"rendered chart differs from golden/{case_name}.yaml "
                    f"(UPDATE_GOLDEN=1 rewrites it):\n{diff}")


def test_notes_golden() -> None:
    path = GOLDEN_DIR / "default.NOTES.txt"
    actual = render("default")["podid/templates/NOTES.txt"]
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(actual)
        return
    assert path.read_text() == actual, "NOTES.txt differs from golden/default.NOTES.txt (UPDATE_GOLDEN=1 rewrites it)"


def test_no_stale_golden_files() -> None:
    expected = {f"{c}.yaml" for c in CASES} | {"default.NOTES.txt"}
    stale = sorted(p.name for p in GOLDEN_DIR.iterdir() if p.name not in expected)
    assert not stale, f"golden files without a case: {stale}"


@functools.lru_cache(maxsize=None)
def _validate(serialized: str, version: str) -> str | None:
    obj = json.loads(serialized)
    try:
        kv.validate(obj, version, strict=True)
    except kv.ValidationError as e:
        where = ".".join(str(p) for p in e.path)
        return f"{obj['kind']}/{obj['metadata']['name']} against {version}: {where}: {e.message}"
    except kv.SchemaNotFoundError as e:
        return e.message
    return None


def test_objects_match_kubernetes_schemas(case_name: str) -> None:
    errors = []
    validated = 0
    for obj in objects(case_name):
        if (obj["apiVersion"], obj["kind"]) in FOREIGN_KINDS:
            continue
        serialized = json.dumps(obj, sort_keys=True)
        for version in kubernetes_versions():
            error = _validate(serialized, version)
            if error:
                errors.append(error)
        validated += 1
    assert validated >= 10
    assert not errors, "\n".join(errors)


def test_only_expected_kinds_skip_schema_validation(case_name: str) -> None:
    builtin = {
        ("v1", "ServiceAccount"), ("v1", "Service"), ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"),
        ("policy/v1", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    }
    kinds = {(o["apiVersion"], o["kind"]) for o in objects(case_name)}
    assert kinds <= builtin | FOREIGN_KINDS, kinds - builtin - FOREIGN_KINDS
    values = CASES[case_name].values
    cert_manager = values.get("certs", {}).get("mode") == "cert-manager"
    monitor = values.get("metrics", {}).get("serviceMonitor", {}).get("enabled", False)
    assert (("cert-manager.io/v1", "Certificate") in kinds) == cert_manager
    assert (("monitoring.coreos.com/v1", "ServiceMonitor") in kinds) == monitor


def test_object_names_are_unique_and_namespaced_in_the_release_namespace(case_name: str) -> None:
    case = CASES[case_name]
    seen = set()
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "CustomResourceDefinition"}
    for obj in objects(case_name):
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace"), meta["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert len(meta["name"]) <= 63 or obj["kind"] == "CustomResourceDefinition"
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in meta, key
        else:
            assert meta.get("namespace") == case.namespace, key


@pytest.mark.parametrize("kube_version", ["v1.29.0", "v1.37.0"])
def test_helm_lint_is_clean(case_name: str, kube_version: str) -> None:
    case = CASES[case_name]
    report = helm.lint(str(CHART_DIR), case.values, strict=True, namespace=case.namespace, kube_version=kube_version)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_crds_are_aad_pod_identitys(case_name: str) -> None:
    crds = [o for o in objects(case_name) if o["kind"] == "CustomResourceDefinition"]
    if CASES[case_name].values.get("crds", {}).get("install") is False:
        assert crds == []
        return
    by_kind = {c["spec"]["names"]["kind"]: c for c in crds}
    assert set(by_kind) == {"AzureIdentity", "AzureIdentityBinding"}
    for crd in crds:
        assert crd["spec"]["group"] == "aadpodidentity.k8s.io"
        assert crd["spec"]["scope"] == "Namespaced"
        assert [v["name"] for v in crd["spec"]["versions"]] == ["v1"]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        # *.k8s.io is a protected group: without this the API server rejects the CRD.
        assert crd["metadata"]["annotations"]["api-approved.kubernetes.io"].startswith("unapproved")

    def spec_props(kind: str) -> dict[str, Any]:
        schema = by_kind[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        return schema["properties"]["spec"]["properties"]

    identity = spec_props("AzureIdentity")
    assert identity["type"]["type"] == "integer"
    for name in ["resourceID", "clientID", "tenantID", "adEndpoint", "adResourceID"]:
        assert identity[name]["type"] == "string", name
    assert set(identity["clientPassword"]["properties"]) == {"name", "namespace"}
    assert identity["auxiliaryTenantIDs"]["items"]["type"] == "string"
    assert identity["replicas"]["type"] == "integer"
    binding = spec_props("AzureIdentityBinding")
    assert binding["azureIdentity"]["type"] == "string"
    assert binding["selector"]["type"] == "string"
    assert binding["weight"]["type"] == "integer"
    columns = {
        kind: [c["jsonPath"] for c in by_kind[kind]["spec"]["versions"][0]["additionalPrinterColumns"]]
        for kind in by_kind
    }
    assert columns["AzureIdentity"][:2] == [".spec.type", ".spec.clientID"]
    assert columns["AzureIdentityBinding"][:2] == [".spec.azureIdentity", ".spec.selector"]


def test_notes_tell_the_next_steps() -> None:
    notes = render("default")["podid/templates/NOTES.txt"]
    assert "kubectl label namespace NAME podid.io/inject=enabled" in notes
    assert "kind: AzureIdentity" in notes
    assert "podid.io/identity: my-identity" in notes
