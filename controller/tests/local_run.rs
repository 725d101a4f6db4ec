//! The whole controller from a `--cluster-file` (no API server) against the Azure stand-in's ARM: one PATCH assigns the pod's identity, the state file records it, and emptying the file removes it after the grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod exec_support;

use std::path::Path;
use std::time::{Duration, Instant};

use exec_support::emulated::{FOREIGN, Stand, quick_arm, stand};
use podid_azure_emulator::Target as EmuTarget;
use podid_controller::metrics::Metrics;
use podid_controller::plan::Policy;
use podid_controller::run::{Config, LocalCluster, run_local};
use tokio::sync::oneshot;

fn cluster_yaml(s: &Stand, with_pod: bool) -> String {
    let x = s.e.read(|st| st.identity("x").unwrap().resource_id.clone());
    let vm = s.e.read(|st| st.vm("vm0").unwrap().resource_id.clone());
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: ns\n  uid: u1\n  \
         labels: {podid.io/injected: \"true\"}\n  annotations: {podid.io/identity: x}\n\
         spec: {nodeName: n-vm0, containers: [{name: app, image: app}]}\nstatus: {phase: Running}\n---\n";
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns, labels: {{podid.io/inject: enabled}}}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {{name: n-vm0}}\nspec: {{providerID: \"azure://{vm}\"}}\n---\n\
         {}apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata: {{name: x, namespace: ns}}\n\
         spec: {{type: 0, resourceID: \"{x}\", clientID: client-x}}\n",
        if with_pod { pod } else { "" }
    )
}

/// A directory holding the cluster file and the state file.
fn local_files() -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalCluster {
        cluster_file: dir.path().join("cluster.yaml"),
        state_file: dir.path().join("state.json"),
    };
    (dir, local)
}

fn config(local: &LocalCluster) -> Config {
    Config {
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        release_namespace: None,
        state_configmap: "unused".into(),
        grace_period: Duration::from_secs(1),
        leader_election: None,
        cloud_config: None,
        workload_identity: Default::default(),
        endpoints: Default::default(),
        arm_ca_file: None,
        immutable_identities: vec![],
        shutdown_timeout: Duration::from_secs(5),
        cluster_file: Some(local.clone()),
    }
}

fn assigned(s: &Stand) -> Vec<String> {
    let vm = EmuTarget::Vm("vm0".into());
    let mut names: Vec<String> = s.e.read(|st| {
        st.assigned(&vm)
            .unwrap()
            .user_assigned
            .iter()
            .map(|id| id.rsplit('/').next().unwrap().to_owned())
            .collect()
    });
    names.sort();
    names
}

async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn state_mentions(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

#[tokio::test]
async fn a_cluster_file_drives_one_patch_and_a_removal_after_grace() {
    let s = stand(quick_arm()).await;
    let (_dir, local) = local_files();
    std::fs::write(&local.cluster_file, cluster_yaml(&s, true)).unwrap();
    let metrics = Metrics::new();
    let arm = s.client().with_metrics(metrics.arm.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(run_local(
        config(&local),
        local.clone(),
        arm,
        Policy::new(Duration::from_secs(1)),
        metrics,
        async {
            let _ = stopped.await;
        },
    ));
    until("x on vm0", Duration::from_secs(20), || {
        assigned(&s).contains(&"x".to_owned())
    })
    .await;
    assert_eq!(assigned(&s), ["foreign", "x"], "the foreign identity stays");
    until("the record", Duration::from_secs(5), || {
        state_mentions(&local.state_file, "/userassignedidentities/x")
    })
    .await;
    assert!(
        !state_mentions(&local.state_file, FOREIGN),
        "only what it added is recorded"
    );

    // The pod leaves the file: x goes after the grace period, foreign never.
    std::fs::write(&local.cluster_file, cluster_yaml(&s, false)).unwrap();
    until("x removed", Duration::from_secs(20), || {
        !assigned(&s).contains(&"x".to_owned())
    })
    .await;
    assert_eq!(assigned(&s), ["foreign"]);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the controller stops on shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_bad_cluster_file_stops_the_start_with_its_cause() {
    let s = stand(quick_arm()).await;
    let (_dir, local) = local_files();
    std::fs::write(
        &local.cluster_file,
        "apiVersion: apps/v1\nkind: Deployment\n",
    )
    .unwrap();
    let err = run_local(
        config(&local),
        local.clone(),
        s.client(),
        Policy::new(Duration::from_secs(1)),
        Metrics::new(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("document 1"), "{err}");
}
