//! The Azure stand-in with ARM over HTTPS, and the real ARM client and executor pointed at it.

use std::collections::BTreeSet;
use std::time::Duration;

use podid_azure_emulator::{
    ArmConfig, ArmLimits, AzureState, Emulator, EmulatorConfig, Target as EmuTarget,
};
use podid_controller::arm::{ArmClient, ArmClientConfig, StaticToken, TrustRoots, roots_from_pem};
use podid_controller::exec::ExecConfig;
use podid_controller::plan::{Policy, Target};

use super::{Cluster, MemoryStore, Running, start};

/// Identities pods may want.
pub const IDS: [&str; 3] = ["x", "y", "z"];
/// An identity someone else assigned to every target.
pub const FOREIGN: &str = "foreign";

/// The stand-in, the cluster around it, and where things are.
pub struct Stand {
    pub e: Emulator,
    pub ca: String,
    pub cluster: Cluster,
    /// (stand-in target, controller target), for vm0 and ss0.
    pub targets: Vec<(EmuTarget, Target)>,
}

/// VM vm0 and scale set ss0 (instances ss0-0, ss0-1), identities x, y, z and
/// `foreign` (assigned to both), ARM over HTTPS with `config`.
pub async fn stand(config: ArmConfig) -> Stand {
    let mut state = AzureState::default();
    for id in IDS.iter().chain([&FOREIGN]) {
        state.add_identity(id);
    }
    state.add_vm("vm0").unwrap();
    state.add_scale_set("ss0").unwrap();
    state.add_scale_set_vm("ss0", "ss0-0").unwrap();
    state.add_scale_set_vm("ss0", "ss0-1").unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    let tls = podid_azure_emulator::tls_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let e = Emulator::start(
        EmulatorConfig::loopback(state)
            .with_arm(tls)
            .with_arm_config(config),
    )
    .await
    .unwrap();
    let mut cluster = Cluster::default();
    for id in IDS {
        let resource_id = e.read(|s| s.identity(id).unwrap().resource_id.clone());
        cluster.identity(id, &resource_id);
    }
    let mut targets = Vec::new();
    for (node, vm, emu) in [
        ("n-vm0", "vm0", EmuTarget::Vm("vm0".into())),
        ("n-ss0-0", "ss0-0", EmuTarget::ScaleSet("ss0".into())),
        ("n-ss0-1", "ss0-1", EmuTarget::ScaleSet("ss0".into())),
    ] {
        let provider = format!(
            "azure://{}",
            e.read(|s| s.vm(vm).unwrap().resource_id.clone())
        );
        cluster.node(node, &provider);
        if !targets.iter().any(|(t, _)| *t == emu) {
            e.assign(&emu, FOREIGN).unwrap();
            targets.push((emu, Target::from_provider_id(&provider).unwrap()));
        }
    }
    Stand {
        e,
        ca: cert,
        cluster,
        targets,
    }
}

/// ARM quick and unthrottled, with small latencies.
pub fn quick_arm() -> ArmConfig {
    ArmConfig {
        limits: ArmLimits::unlimited(),
        vm_latency: Duration::from_millis(150),
        scale_set_latency: Duration::from_millis(250),
        ..ArmConfig::default()
    }
}

/// Executor pacing for real time: short windows, short backoff.
pub fn fast_exec() -> ExecConfig {
    ExecConfig {
        coalesce_window: Duration::from_millis(100),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..ExecConfig::default()
    }
}

impl Stand {
    /// The client configuration for this stand-in.
    pub fn client_config(&self) -> ArmClientConfig {
        ArmClientConfig {
            endpoint: self.e.arm_endpoint().unwrap(),
            roots: TrustRoots::Custom(roots_from_pem(self.ca.as_bytes()).unwrap()),
            request_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_millis(25),
            default_retry_after: Duration::from_secs(1),
            ..ArmClientConfig::default()
        }
    }

    /// The real ARM client against the stand-in.
    pub fn client(&self) -> ArmClient<StaticToken> {
        ArmClient::new(self.client_config(), StaticToken::new("test-token")).unwrap()
    }

    /// An executor over the real client.
    pub fn executor(&self, store: &MemoryStore, policy: Policy, config: ExecConfig) -> Running {
        start(self.client(), store.clone(), policy, config)
    }

    /// Lower-cased ids of identity `names`.
    pub fn ids(&self, names: &[&str]) -> BTreeSet<String> {
        names
            .iter()
            .map(|n| {
                self.e
                    .read(|s| s.identity(n).unwrap().resource_id.to_ascii_lowercase())
            })
            .collect()
    }

    /// Lower-cased ids `target` carries in the stand-in.
    pub fn carried(&self, target: &EmuTarget) -> BTreeSet<String> {
        self.e
            .read(|s| s.assigned(target).map(|a| a.user_assigned.clone()))
            .unwrap()
    }

    /// Whether `target` carries exactly identities `names` plus the foreign one.
    pub fn carries_exactly(&self, target: &EmuTarget, names: &[&str]) -> bool {
        let mut want = self.ids(names);
        want.extend(self.ids(&[FOREIGN]));
        self.carried(target) == want
    }

    pub fn vm0(&self) -> &EmuTarget {
        &self.targets[0].0
    }

    pub fn ss0(&self) -> &EmuTarget {
        &self.targets[1].0
    }
}
