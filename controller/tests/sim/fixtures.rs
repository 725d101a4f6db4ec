//! The fixed parts of the simulated world: names, nodes, identity objects, protected ids, history steps.

use std::collections::BTreeSet;
use std::time::Duration;

use podid_controller::plan::Target;
use podid_core::azure_ids::canonical_id;
use podid_core::model::{
    AzureIdentity, AzureIdentityBinding, AzureIdentityBindingSpec, AzureIdentitySpec,
    IdentityIndex, IdentityType,
};

pub const GRACE: Duration = Duration::from_secs(60);
/// Names pods reference: identities, protected ones, a service principal, one that does not exist.
pub const REFS: [&str; 9] = [
    "i0", "i1", "i2", "i3", "kubelet", "frozen", "sp", "missing", "i4",
];
/// Identities possibly pre-assigned by someone else.
pub const FOREIGN: [&str; 4] = ["i0", "i1", "f0", "kubelet"];
pub const NAMESPACES: [&str; 3] = ["ns1", "ns2", "off"];
pub const NODES: [&str; 6] = ["n-vm0", "n-vm1", "n-ss0-0", "n-ss0-1", "n-ss1-0", "n-kind"];

pub fn uid(name: &str) -> String {
    format!(
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

pub fn provider(node: &str) -> String {
    let base = "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute";
    match node {
        "n-vm0" => format!("{base}/virtualMachines/vm0"),
        "n-vm1" => format!("{base}/virtualMachines/VM1"),
        "n-ss0-0" => format!("{base}/virtualMachineScaleSets/ss0/virtualMachines/0"),
        "n-ss0-1" => format!("{base}/virtualMachineScaleSets/SS0/virtualMachines/1"),
        "n-ss1-0" => format!("{base}/virtualMachineScaleSets/ss1/virtualMachines/0"),
        _ => "kind://docker/kind/worker".into(),
    }
}

pub fn targets() -> Vec<Target> {
    NODES[..5]
        .iter()
        .map(|n| Target::from_provider_id(&provider(n)).unwrap())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

pub fn identity(ns: &str, name: &str) -> AzureIdentity {
    // ns2 writes ids upper-cased: the same identity, another spelling.
    let resource_id = if ns == "ns2" {
        uid(name).to_ascii_uppercase()
    } else {
        uid(name)
    };
    let sp = name == "sp";
    AzureIdentity {
        name: name.into(),
        namespace: ns.into(),
        spec: AzureIdentitySpec {
            kind: if sp {
                IdentityType::ServicePrincipal
            } else {
                IdentityType::UserAssignedMsi
            },
            resource_id,
            client_id: format!("client-{name}"),
            tenant_id: if sp { "tenant".into() } else { String::new() },
            client_password: sp.then(|| podid_core::model::SecretRef {
                name: "s".into(),
                namespace: String::new(),
            }),
            ad_endpoint: String::new(),
            ad_resource_id: String::new(),
        },
        credential: Default::default(),
    }
}

pub fn index() -> IdentityIndex {
    let mut index = IdentityIndex::new();
    for ns in NAMESPACES {
        for name in REFS.iter().filter(|n| **n != "missing") {
            index.upsert_identity(identity(ns, name));
        }
        index.upsert_binding(AzureIdentityBinding {
            name: "bind".into(),
            namespace: ns.into(),
            spec: AzureIdentityBindingSpec {
                azure_identity: "i2".into(),
                selector: "app".into(),
            },
        });
    }
    index
}

pub fn protected() -> BTreeSet<String> {
    ["kubelet", "frozen"]
        .iter()
        .map(|n| canonical_id(&uid(n)))
        .collect()
}

#[derive(Clone, Debug)]
pub enum Op {
    Create {
        ns: usize,
        refs: Vec<usize>,
        bound: bool,
    },
    Schedule {
        pod: usize,
        node: usize,
    },
    Finish {
        pod: usize,
        failed: bool,
    },
    Delete {
        pod: usize,
    },
    Advance {
        secs: u64,
    },
}
