//! The benchmark's world: the ARM stand-in with scale sets, VMs and identities, and the cluster whose desired state the executor is given.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use podid_azure_emulator::{ArmConfig, AzureState, Emulator, EmulatorConfig, Target as EmuTarget};
use podid_controller::plan::{
    ClusterView, Desired, PodInfo, PodPhase, Target, TargetOwnership, desired_state,
};
use podid_controller::seams::{OwnershipStore, StoreError};
use podid_core::model::{AzureIdentity, AzureIdentitySpec, IdentityIndex, IdentityType};
use podid_core::names;

use crate::Scale;

/// Identities someone else assigned to every target; never to be removed.
pub const FOREIGN: [&str; 2] = ["foreign", "kubelet"];
const NS: &str = "bench";

/// The stand-in and the cluster.
pub struct World {
    pub e: Emulator,
    pub ca: String,
    pub nodes: Vec<String>,
    providers: BTreeMap<String, String>,
    index: IdentityIndex,
    pods: BTreeMap<String, PodInfo>,
    /// Controller target → stand-in target.
    pub targets: BTreeMap<Target, EmuTarget>,
    next: usize,
}

impl World {
    /// Starts the stand-in: `scale`'s scale sets, VMs and identities, the
    /// foreign ones assigned everywhere, ARM with Azure's throttling and a
    /// fixed PATCH latency.
    pub async fn start(scale: &Scale) -> Self {
        let (state, vms, names) = populate(scale);
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
        let tls =
            podid_azure_emulator::tls_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let arm = ArmConfig {
            vm_latency: scale.latency,
            scale_set_latency: scale.latency,
            ..ArmConfig::default()
        };
        let config = EmulatorConfig::loopback(state)
            .with_arm(tls)
            .with_arm_config(arm);
        let config = EmulatorConfig {
            imds: Vec::new(),
            ..config
        };
        let e = Emulator::start(config).await.unwrap();
        let mut world = Self {
            e,
            ca: cert,
            nodes: Vec::new(),
            providers: BTreeMap::new(),
            index: IdentityIndex::new(),
            pods: BTreeMap::new(),
            targets: BTreeMap::new(),
            next: 0,
        };
        world.describe(&vms, &names);
        world
    }

    /// Nodes, identity objects, targets, and the foreign identities assigned.
    fn describe(&mut self, vms: &[String], names: &[String]) {
        for vm in vms {
            let (id, set) = self.e.read(|s| {
                let v = s.vm(vm).unwrap();
                (v.resource_id.clone(), v.scale_set.clone())
            });
            let provider = format!("azure://{id}");
            let node = format!("node-{vm}");
            self.nodes.push(node.clone());
            self.providers.insert(node, provider.clone());
            let emu = set.map_or_else(|| EmuTarget::Vm(vm.clone()), EmuTarget::ScaleSet);
            self.targets
                .insert(Target::from_provider_id(&provider).unwrap(), emu);
        }
        for emu in self.targets.values() {
            for f in FOREIGN {
                self.e.assign(emu, f).unwrap();
            }
        }
        for n in names {
            let id = self.e.read(|s| s.identity(n).unwrap().clone());
            self.index.upsert_identity(AzureIdentity {
                name: n.clone(),
                namespace: NS.into(),
                spec: AzureIdentitySpec {
                    kind: IdentityType::UserAssignedMsi,
                    resource_id: id.resource_id,
                    client_id: id.client_id,
                    tenant_id: String::new(),
                    client_password: None,
                    ad_endpoint: String::new(),
                    ad_resource_id: String::new(),
                },
                credential: Default::default(),
            });
        }
    }

    /// A resource id, lower-cased.
    pub fn id_of(&self, name: &str) -> String {
        self.e
            .read(|s| s.identity(name).unwrap().resource_id.to_ascii_lowercase())
    }

    /// A new running pod on node `node` wanting identity objects `wants`; its name.
    pub fn add_pod(&mut self, node: usize, wants: &str) -> String {
        let name = format!("p{:05}", self.next);
        self.next += 1;
        let annotations =
            BTreeMap::from([(names::IDENTITY_ANNOTATION.to_owned(), wants.to_owned())]);
        let pod = PodInfo {
            namespace: NS.into(),
            name: name.clone(),
            uid: format!("uid-{name}"),
            node_name: Some(self.nodes[node % self.nodes.len()].clone()),
            phase: PodPhase::Running,
            labels: BTreeMap::new(),
            annotations,
        };
        self.pods.insert(name.clone(), pod);
        name
    }

    /// Deletes pod `name`; what it wanted and which node it was on.
    pub fn delete_pod(&mut self, name: &str) -> Option<(String, String)> {
        let pod = self.pods.remove(name)?;
        let wants = pod.annotations.get(names::IDENTITY_ANNOTATION).cloned();
        Some((wants.unwrap_or_default(), pod.node_name.unwrap_or_default()))
    }

    /// Names of every pod.
    pub fn pod_names(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// The desired state, as the kube glue computes it.
    pub fn desired(&self) -> Desired {
        let pods: Vec<PodInfo> = self.pods.values().cloned().collect();
        let opted_in = BTreeSet::from([NS.to_owned()]);
        desired_state(&ClusterView {
            pods: &pods,
            nodes: &self.providers,
            identities: &self.index,
            opted_in: &opted_in,
        })
    }

    /// Whether every target carries what `desired` needs (and, with `exact`,
    /// nothing else but the foreign identities).
    pub fn converged(&self, desired: &Desired, exact: bool) -> bool {
        let foreign: BTreeSet<String> = FOREIGN.iter().map(|f| self.id_of(f)).collect();
        self.targets.iter().all(|(target, emu)| {
            let carried = self
                .e
                .read(|s| s.assigned(emu).unwrap().user_assigned.clone());
            let needed: BTreeSet<String> = desired
                .targets
                .get(target)
                .map(|n| n.keys().cloned().collect())
                .unwrap_or_default();
            let extra = carried.difference(&needed).all(|c| foreign.contains(c));
            needed.is_subset(&carried) && (!exact || extra)
        })
    }

    /// Foreign identities missing from some target (must stay 0).
    pub fn foreign_removed(&self) -> usize {
        let foreign: Vec<String> = FOREIGN.iter().map(|f| self.id_of(f)).collect();
        let targets = self.targets.values();
        targets
            .map(|emu| {
                let carried = self
                    .e
                    .read(|s| s.assigned(emu).unwrap().user_assigned.clone());
                foreign.iter().filter(|f| !carried.contains(*f)).count()
            })
            .sum()
    }
}

/// The stand-in's world: identities (`id-00`…, and the foreign ones),
/// scale sets with their instances, standalone VMs. Returns it with the VM
/// names and identity names.
fn populate(scale: &Scale) -> (AzureState, Vec<String>, Vec<String>) {
    let mut state = AzureState::default();
    let names: Vec<String> = (0..scale.identities)
        .map(|i| format!("id-{i:02}"))
        .collect();
    for n in names.iter().map(String::as_str).chain(FOREIGN) {
        state.add_identity(n);
    }
    let mut vms = Vec::new();
    for s in 0..scale.scale_sets {
        let set = format!("ss{s}");
        state.add_scale_set(&set).unwrap();
        for i in 0..scale.instances {
            let name = format!("{set}-{i}");
            state.add_scale_set_vm(&set, &name).unwrap();
            vms.push(name);
        }
    }
    for v in 0..scale.vms {
        let name = format!("vm{v}");
        state.add_vm(&name).unwrap();
        vms.push(name);
    }
    (state, vms, names)
}

/// Ownership records in memory (the kube glue keeps them in a ConfigMap).
#[derive(Clone, Debug, Default)]
pub struct MemStore(Arc<Mutex<HashMap<Target, TargetOwnership>>>);

impl OwnershipStore for MemStore {
    async fn load(&self) -> Result<BTreeMap<Target, TargetOwnership>, StoreError> {
        let records = self.0.lock().unwrap();
        Ok(records
            .iter()
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect())
    }

    async fn save(&self, target: &Target, records: &TargetOwnership) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .insert(target.clone(), records.clone());
        Ok(())
    }
}
