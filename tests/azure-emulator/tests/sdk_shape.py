"""Checks that the emulated ARM and podid's request builder speak Azure's shapes, with azure-mgmt-compute's own models.

Modes (each prints one JSON line and exits non-zero on the first mismatch):
  bodies FILE    FILE holds {"vm": GET body, "vmss": GET body, ...}: each is read the way the SDK
                 reads responses, every key must be one the models know, typed fields must read back.
  requests FILE  FILE holds [{"kind": "vm"|"vmss", "body": PATCH body}]: the SDK's own
                 VirtualMachineUpdate / VirtualMachineScaleSetUpdate, built from the same content and
                 serialized as the SDK sends it, must be byte-for-byte the same JSON.
  live ...       the real ComputeManagementClient against the emulator over HTTPS: get, then
                 begin_update (long-running operation polled to its end) on a VM and a scale set.
"""

import argparse
import json
import sys
import time

from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m
from azure.mgmt.compute._utils.model_base import SdkJSONEncoder, _deserialize

IDENTITY_TYPES = {t.value for t in m.ResourceIdentityType}
# Model classes of the nested objects whose keys are checked (dict-valued fields map to their value type).
NESTED = {
    m.VirtualMachine: {"identity": m.VirtualMachineIdentity, "properties": m.VirtualMachineProperties},
    m.VirtualMachineScaleSet: {
        "identity": m.VirtualMachineScaleSetIdentity,
        "properties": m.VirtualMachineScaleSetProperties,
        "sku": m.Sku,
    },
    m.VirtualMachineIdentity: {"userAssignedIdentities": ("dict", m.UserAssignedIdentitiesValue)},
    m.VirtualMachineScaleSetIdentity: {"userAssignedIdentities": ("dict", m.UserAssignedIdentitiesValue)},
    m.VirtualMachineProperties: {"hardwareProfile": m.HardwareProfile},
    m.VirtualMachineScaleSetProperties: {"upgradePolicy": m.UpgradePolicy},
}


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def rest_names(cls):
    # The models compute their field table when the first instance is made.
    return {field._rest_name for field in cls()._attr_to_rest_field.values()}


def unknown_keys(cls, data, path):
    """Keys of `data` that model `cls` does not define, recursively through NESTED."""
    found = [f"{path}.{k}" for k in data if k not in rest_names(cls)]
    for key, nested in NESTED.get(cls, {}).items():
        value = data.get(key)
        if not isinstance(value, dict):
            continue
        if isinstance(nested, tuple):
            for k, v in value.items():
                found += unknown_keys(nested[1], v or {}, f"{path}.{key}[{k}]")
        else:
            found += unknown_keys(nested, value, f"{path}.{key}")
    return found


def check_identity(identity, where):
    if identity is None:
        return
    if identity.type not in IDENTITY_TYPES:
        fail(f"{where}: identity.type {identity.type!r} is not one of {sorted(IDENTITY_TYPES)}")
    if "SystemAssigned" in identity.type and not (identity.principal_id and identity.tenant_id):
        fail(f"{where}: system-assigned identity without principalId/tenantId")
    for rid, value in (identity.user_assigned_identities or {}).items():
        if not (value.client_id and value.principal_id):
            fail(f"{where}: user-assigned {rid} without clientId/principalId")


def check_bodies(path):
    with open(path) as f:
        bodies = json.load(f)
    for name, body in bodies.items():
        cls = m.VirtualMachineScaleSet if body.get("type", "").endswith("ScaleSets") else m.VirtualMachine
        extra = unknown_keys(cls, body, name)
        if extra:
            fail(f"keys the SDK does not model: {extra}")
        model = _deserialize(cls, body)
        if not (model.id and model.name and model.location and model.type):
            fail(f"{name}: id/name/location/type missing")
        if model.properties.provisioning_state not in ("Succeeded", "Updating", "Failed"):
            fail(f"{name}: provisioningState {model.properties.provisioning_state!r}")
        check_identity(model.identity, name)
    print(json.dumps({"ok": True, "checked": sorted(bodies)}))


def sdk_update(kind, body):
    """The SDK's own update model for the identity content of `body`."""
    identity = body["identity"]
    kwargs = {"type": identity["type"]}
    users = identity.get("userAssignedIdentities")
    if users is not None:
        kwargs["user_assigned_identities"] = {
            k: (None if v is None else m.UserAssignedIdentitiesValue()) for k, v in users.items()
        }
    if kind == "vm":
        return m.VirtualMachineUpdate(identity=m.VirtualMachineIdentity(**kwargs))
    return m.VirtualMachineScaleSetUpdate(identity=m.VirtualMachineScaleSetIdentity(**kwargs))


def check_requests(path):
    with open(path) as f:
        cases = json.load(f)
    for i, case in enumerate(cases):
        if case["body"]["identity"]["type"] not in IDENTITY_TYPES:
            fail(f"request {i}: type {case['body']['identity']['type']!r}")
        sent = json.dumps(sdk_update(case["kind"], case["body"]), cls=SdkJSONEncoder, exclude_readonly=True)
        if json.loads(sent) != case["body"]:
            fail(f"request {i}: SDK sends {sent}, podid built {json.dumps(case['body'])}")
    print(json.dumps({"ok": True, "requests": len(cases)}))


class StaticToken:
    """A credential handing out one opaque token (the emulator's ARM accepts any bearer token by default)."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("sdk-shape-token", int(time.time()) + 3600)


def live(args):
    client = ComputeManagementClient(
        StaticToken(), args.subscription, base_url=args.endpoint, connection_verify=args.ca, polling_interval=0.05
    )
    vm = client.virtual_machines.get(args.group, args.vm)
    check_identity(vm.identity, "vm")
    update = m.VirtualMachineUpdate(identity=m.VirtualMachineIdentity(
        type="UserAssigned", user_assigned_identities={args.identity: m.UserAssignedIdentitiesValue()}))
    vm = client.virtual_machines.begin_update(args.group, args.vm, update).result(timeout=30)
    got = {k.lower() for k in (vm.identity.user_assigned_identities or {})}
    if args.identity.lower() not in got or vm.provisioning_state != "Succeeded":
        fail(f"VM after begin_update: {vm.as_dict()}")
    ss_update = m.VirtualMachineScaleSetUpdate(identity=m.VirtualMachineScaleSetIdentity(
        type="UserAssigned",
        user_assigned_identities={args.identity: m.UserAssignedIdentitiesValue()}))
    ss = client.virtual_machine_scale_sets.begin_update(args.group, args.vmss, ss_update).result(timeout=30)
    check_identity(ss.identity, "vmss")
    none = m.VirtualMachineScaleSetUpdate(identity=m.VirtualMachineScaleSetIdentity(type="None"))
    ss = client.virtual_machine_scale_sets.begin_update(args.group, args.vmss, none).result(timeout=30)
    if ss.identity is not None:
        fail(f"scale set still has an identity: {ss.as_dict()}")
    print(json.dumps({"ok": True, "vm": vm.identity.type}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("bodies").add_argument("file")
    sub.add_parser("requests").add_argument("file")
    lv = sub.add_parser("live")
    for flag in ("endpoint", "ca", "subscription", "group", "vm", "vmss", "identity"):
        lv.add_argument(f"--{flag}", required=True)
    args = parser.parse_args()
    {"bodies": lambda: check_bodies(args.file), "requests": lambda: check_requests(args.file), "live": lambda: live(args)}[args.mode]()


if __name__ == "__main__":
    main()
