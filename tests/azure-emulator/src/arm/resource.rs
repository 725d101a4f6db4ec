//! VM and scale-set bodies as ARM's GET returns them (the fields SDKs model, identity in full).

use serde_json::{Map, Value, json};

use crate::ids;
use crate::state::{AssignedIdentities, AzureState, Target};

/// Size every emulated VM reports.
const VM_SIZE: &str = "Standard_D2s_v3";

/// The GET body of `target`, with `provisioning_state`; `None` if it does not exist.
pub fn resource_json(
    state: &AzureState,
    target: &Target,
    provisioning_state: &str,
) -> Option<Value> {
    let mut body = match target {
        Target::Vm(name) => {
            let vm = state.vm(name)?;
            json!({
                "name": vm.name,
                "id": vm.resource_id,
                "type": "Microsoft.Compute/virtualMachines",
                "location": state.location,
                "tags": {},
                "properties": {
                    "vmId": ids::stable_guid(&format!("vmid:{}", vm.resource_id.to_ascii_lowercase())),
                    "hardwareProfile": {"vmSize": VM_SIZE},
                    "provisioningState": provisioning_state,
                },
            })
        }
        Target::ScaleSet(name) => {
            let set = state.scale_set(name)?;
            let capacity = state
                .vms()
                .filter(|vm| vm.scale_set.as_deref() == Some(name))
                .count();
            json!({
                "name": set.name,
                "id": set.resource_id,
                "type": "Microsoft.Compute/virtualMachineScaleSets",
                "location": state.location,
                "tags": {},
                "sku": {"name": VM_SIZE, "tier": "Standard", "capacity": capacity},
                "properties": {
                    "uniqueId": ids::stable_guid(&format!("vmss:{}", set.resource_id.to_ascii_lowercase())),
                    "orchestrationMode": "Uniform",
                    "upgradePolicy": {"mode": "Manual"},
                    "overprovision": false,
                    "singlePlacementGroup": true,
                    "provisioningState": provisioning_state,
                },
            })
        }
    };
    let block = state.assigned(target).ok()?;
    if let (Some(identity), Value::Object(map)) = (identity_json(state, block), &mut body) {
        map.insert("identity".into(), identity);
    }
    Some(body)
}

/// The `identity` block; `None` when the type is `None` (ARM then omits it).
pub fn identity_json(state: &AzureState, block: &AssignedIdentities) -> Option<Value> {
    let kind = block.arm_type();
    if kind == "None" {
        return None;
    }
    let mut identity = Map::new();
    identity.insert("type".into(), kind.into());
    if let Some(system) = &block.system {
        identity.insert("principalId".into(), system.principal_id.clone().into());
        identity.insert("tenantId".into(), state.tenant_id.clone().into());
    }
    if !block.user_assigned.is_empty() {
        let users: Map<String, Value> = block
            .user_assigned
            .iter()
            .map(|key| match state.identity(key) {
                Some(i) => (
                    i.resource_id.clone(),
                    json!({"principalId": i.principal_id, "clientId": i.client_id}),
                ),
                // Deleted since it was assigned: ARM still lists it.
                None => (key.clone(), json!({})),
            })
            .collect();
        identity.insert("userAssignedIdentities".into(), Value::Object(users));
    }
    Some(Value::Object(identity))
}
