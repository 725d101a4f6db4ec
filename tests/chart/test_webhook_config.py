"""The MutatingWebhookConfiguration is exactly what CONTRACT.md §1 and §3 describe.

The expected values are written out here; the test also checks that
docs/CONTRACT.md still says them, and core/src/names.rs is checked for the
names both share, so a change on either side shows up here.
"""

from __future__ import annotations

import re

from conftest import CASES, ROOT, objects, one

SYSTEM_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease"]


def contract_text() -> str:
    return (ROOT / "docs" / "CONTRACT.md").read_text()


def core_names() -> dict[str, str]:
    text = (ROOT / "core" / "src" / "names.rs").read_text()
    names = dict(re.findall(r'pub const (\w+): &str = "([^"]*)";', text))
    names["SYSTEM_NAMESPACES"] = re.search(r"pub const SYSTEM_NAMESPACES: \[&str; \d+\] = \[([^\]]*)\]", text).group(1)
    names["WEBHOOK_PORT"] = re.search(r"pub const WEBHOOK_PORT: u16 = (\d+);", text).group(1)
    names["WEBHOOK_ADMIN_PORT"] = re.search(r"pub const WEBHOOK_ADMIN_PORT: u16 = (\d+);", text).group(1)
    return names


def webhook_of(case_name: str) -> tuple[dict, dict]:
    config = one(objects(case_name), "MutatingWebhookConfiguration")
    assert len(config["webhooks"]) == 1
    return config, config["webhooks"][0]


def test_webhook_configuration_matches_the_contract(case_name: str) -> None:
    case = CASES[case_name]
    webhook_values = case.values.get("webhook", {})
    config, hook = webhook_of(case_name)
    fullname = "podid" if case.release == "podid" else f"{case.release}-podid"

    assert config["metadata"]["name"] == f"{fullname}-webhook"
    assert hook["name"] == "pods.podid.io"
    assert hook["rules"] == [
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "Namespaced"}
    ]
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["namespaceSelector"] == {
        "matchLabels": {"podid.io/inject": "enabled"},
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": SYSTEM_NAMESPACES + [case.namespace],
            }
        ],
    }
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": "podid.io/inject", "operator": "NotIn", "values": ["disabled"]}]
    }
    assert hook["sideEffects"] == "None"
    assert hook["timeoutSeconds"] == webhook_values.get("timeoutSeconds", 5)
    assert hook["failurePolicy"] == webhook_values.get("failurePolicy", "Fail")
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["matchPolicy"] == "Equivalent"
    assert hook["clientConfig"] == {
        "service": {"name": f"{fullname}-webhook", "namespace": case.namespace, "path": "/mutate", "port": 443}
    }


def test_ca_bundle_is_never_templated(case_name: str) -> None:
    """The webhook (self) or cert-manager's cainjector owns caBundle; helm must not reset it."""
    config, hook = webhook_of(case_name)
    assert "caBundle" not in hook["clientConfig"]
    annotations = config["metadata"].get("annotations", {})
    case = CASES[case_name]
    if case.values.get("certs", {}).get("mode") == "cert-manager":
        assert annotations == {"cert-manager.io/inject-ca-from": f"{case.namespace}/{config['metadata']['name']}"}
        cert = one(objects(case_name), "Certificate", config["metadata"]["name"])
        service = hook["clientConfig"]["service"]
        assert f"{service['name']}.{service['namespace']}.svc" in cert["spec"]["dnsNames"]
    else:
        assert annotations == {}


def test_service_routes_443_to_the_webhooks_8443(case_name: str) -> None:
    _, hook = webhook_of(case_name)
    objs = objects(case_name)
    service = one(objs, "Service", hook["clientConfig"]["service"]["name"])
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["https"]["port"] == 443 and ports["https"]["targetPort"] == "https"
    assert ports["metrics"]["port"] == 8080
    container = one(objs, "Deployment", service["metadata"]["name"])["spec"]["template"]["spec"]["containers"][0]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container_ports == {"https": 8443, "metrics": 8080}


def test_the_contract_still_says_so() -> None:
    text = " ".join(contract_text().split())  # rewrapping the contract is no change
    for phrase in [
        "`podid.io/inject` | Namespace label | `enabled`",
        "`podid.io/inject` | Pod label | `disabled`",
        "`kube-system`, `kube-public`, `kube-node-lease` and the release namespace",
        "`kubernetes.io/metadata.name`",
        "Operation: `CREATE` of `pods` only; `admissionReviewVersions: [v1]`",
        "`sideEffects: None`",
        "`timeoutSeconds` 5",
        "`failurePolicy: Fail` (configurable)",
        "`reinvocationPolicy: IfNeeded`",
        "`matchPolicy: Equivalent`",
        "HTTPS on 8443 (Service port 443), path `/mutate`",
        "plain-HTTP port 8080",
    ]:
        assert phrase in text, f"CONTRACT.md no longer says {phrase!r}: align the chart and this test"


def test_names_shared_with_core() -> None:
    names = core_names()
    assert names["INJECT_LABEL"] == "podid.io/inject"
    assert names["INJECT_ENABLED"] == "enabled"
    assert names["INJECT_DISABLED"] == "disabled"
    assert names["WEBHOOK_PATH"] == "/mutate"
    assert names["WEBHOOK_PORT"] == "8443"
    assert names["WEBHOOK_ADMIN_PORT"] == "8080"
    assert names["IDENTITY_GROUP"] == "aadpodidentity.k8s.io"
    assert names["IDENTITY_VERSION"] == "v1"
    assert re.findall(r'"([^"]+)"', names["SYSTEM_NAMESPACES"]) == SYSTEM_NAMESPACES
