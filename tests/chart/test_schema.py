"""values.schema.json turns wrong values into an install error that names the field.

Rendering runs the same schema check `helm install` does, before any template.
"""

from __future__ import annotations

import json

import helm_python as helm
import pytest
import yaml

from conftest import CHART_DIR, GUID, Case, chart, render

BAD_VALUES = {
    "certs-mode": ({"certs": {"mode": "foo"}}, "/certs/mode"),
    "timeout-too-long": ({"webhook": {"timeoutSeconds": 99}}, "/webhook/timeoutSeconds"),
    "timeout-zero": ({"webhook": {"timeoutSeconds": 0}}, "/webhook/timeoutSeconds"),
    "timeout-not-integer": ({"webhook": {"timeoutSeconds": "5"}}, "/webhook/timeoutSeconds"),
    "native-sidecars": ({"nativeSidecars": "sometimes"}, "/nativeSidecars"),
    "pods-without-identity": ({"podsWithoutIdentity": "allow"}, "/podsWithoutIdentity"),
    "failure-policy": ({"webhook": {"failurePolicy": "fail"}}, "/webhook/failurePolicy"),
    "webhook-replicas": ({"webhook": {"replicas": 0}}, "/webhook/replicas"),
    "controller-replicas": ({"controller": {"replicas": -1}}, "/controller/replicas"),
    "strict-string": ({"strict": "yes"}, "/strict"),
    "crds-install-string": ({"crds": {"install": "false"}}, "/crds/install"),
    "unknown-top-level": ({"webhooks": {"replicas": 2}}, "'webhooks'"),
    "unknown-nested": ({"webhook": {"replica": 2}}, "'replica'"),
    "exception-with-semicolon": ({"exceptions": ["a=b;c=d"]}, "/exceptions/0"),
    "exception-empty": ({"exceptions": [""]}, "/exceptions/0"),
    "exceptions-not-list": ({"exceptions": "app=legacy"}, "/exceptions"),
    "immutable-not-an-id": ({"immutableIdentities": ["agentpool"]}, "/immutableIdentities/0"),
    "duration": ({"proxy": {"readyTimeout": "1 minute"}}, "/proxy/readyTimeout"),
    "grace-period": ({"controller": {"gracePeriod": "5d"}}, "/controller/gracePeriod"),
    "pull-policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "digest": ({"image": {"proxy": {"name": "proxy", "digest": "latest"}}}, "/image/proxy/digest"),
    "log-format": ({"logging": {"format": "xml"}}, "/logging/format"),
    "client-id": ({"azure": {"workloadIdentity": {"clientID": "my-app", "tenantID": GUID}}}, "/azure/workloadIdentity/clientID"),
    "client-id-without-tenant": ({"azure": {"workloadIdentity": {"clientID": GUID}}}, "/azure/workloadIdentity/tenantID"),
    "arm-endpoint-http": ({"azure": {"armEndpoint": "http://management.azure.com"}}, "/azure/armEndpoint"),
    "resources-typo": ({"webhook": {"resources": {"limit": {"memory": "1Gi"}}}}, "'limit'"),
    "issuer-kind": ({"certs": {"certManager": {"issuerRef": {"name": "x", "kind": "Vault"}}}}, "/certs/certManager/issuerRef/kind"),
    "service-monitor-enabled": ({"metrics": {"serviceMonitor": {"enabled": "true"}}}, "/metrics/serviceMonitor/enabled"),
}


@pytest.mark.parametrize("values,field", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_fail_naming_the_field(values: dict, field: str) -> None:
    with pytest.raises(helm.HelmValuesError) as err:
        render(Case(values))
    message = str(err.value)
    assert field in message, message


def test_no_credentials_for_the_controller_fails_with_a_hint() -> None:
    with pytest.raises(helm.HelmRenderError) as err:
        render(Case({"azure": {"cloudConfigHostPath": ""}}))
    message = str(err.value)
    assert "azure.cloudConfigSecret" in message and "azure.workloadIdentity.clientID" in message


def test_defaults_pass_the_schema() -> None:
    chart().validate_schema({})


def test_every_value_is_documented() -> None:
    """Each key of values.yaml carries a `# --` comment (helm-docs) or is a map of such keys,
    and has a values.schema.json entry. Keys inside a documented value (e.g. the
    `requests` of a documented `resources`) are part of that value."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    undocumented, unschemed = [], []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = stripped.partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        inside_documented = any(documented for _, _, documented in stack)
        documented = _documented(lines, i)
        stack.append((indent, key, documented))
        if inside_documented:
            continue
        path = ".".join(k for _, k, _ in stack)
        is_map = value.strip() == "" and i + 1 < len(lines) and _indent(lines[i + 1]) > indent
        if not documented and not is_map:
            undocumented.append(path)
        node = schema
        for k in path.split("."):
            node = node.get("properties", {}).get(k)
            if node is None:
                unschemed.append(path)
                break
    assert not undocumented, f"values without a '# --' comment: {undocumented}"
    assert not unschemed, f"values missing from values.schema.json: {unschemed}"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip()) if line.strip() else 0


def _documented(lines: list[str], i: int) -> bool:
    j = i - 1
    while j >= 0 and lines[j].strip().startswith("#"):
        if lines[j].strip().startswith("# --"):
            return True
        j -= 1
    return False


def test_values_yaml_parses_to_what_helm_sees() -> None:
    ours = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert chart().merge_values({}) == ours
