//! The binary serves ARM over HTTPS with the flags' configuration, and refuses ARM without a certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::arm::*;
use serde_json::json;

const WORLD: &str = "
subscriptionId: 44444444-4444-4444-8444-444444444444
resourceGroup: rg-bin
identities:
  - name: id-a
  - name: id-locked
    callerCanAssign: false
scaleSets:
  - name: ss0
vms:
  - name: vm0
";

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Kills the child when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with ARM on a free port; returns the certificate, the address and the process.
async fn start_binary(dir: &tempfile::TempDir) -> (String, SocketAddr, Running) {
    let (cert, key) = localhost_cert();
    let (cert_path, key_path, world) = (
        dir.path().join("c.pem"),
        dir.path().join("k.pem"),
        dir.path().join("w.yaml"),
    );
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(&world, WORLD).unwrap();
    let arm = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_podid-azure-emulator"))
        .arg("--identities")
        .arg(&world)
        .args(["--arm-listen", &arm.to_string()])
        .arg("--arm-tls-cert")
        .arg(&cert_path)
        .arg("--arm-tls-key")
        .arg(&key_path)
        .args([
            "--arm-resource-write-burst",
            "1",
            "--arm-vm-latency-ms",
            "50",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(arm).await.is_err() {
        assert!(Instant::now() < deadline, "ARM did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (cert, arm, running)
}

#[tokio::test]
async fn the_binary_serves_arm_over_https_with_the_configured_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, arm, _child) = start_binary(&dir).await;
    let vm = format!(
        "/subscriptions/44444444-4444-4444-8444-444444444444/resourceGroups/rg-bin/providers/Microsoft.Compute/virtualMachines/vm0?{API}"
    );
    let r = https(arm, &cert, "GET", &vm, Some(BEARER), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "vm0");
    let id = "/subscriptions/44444444-4444-4444-8444-444444444444/resourceGroups/rg-bin/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a";
    let body = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {id: {}}}})
        .to_string();
    assert_eq!(
        https(arm, &cert, "PATCH", &vm, Some(BEARER), &body)
            .await
            .status,
        200
    );
    let again = https(arm, &cert, "PATCH", &vm, Some(BEARER), &body).await;
    assert_eq!(again.status, 429, "a bucket of 1: {}", again.body);
    let locked = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {id.replace("id-a", "id-locked"): {}}}});
    let ss0 = vm.replace("virtualMachines/vm0", "virtualMachineScaleSets/ss0");
    let r = https(arm, &cert, "PATCH", &ss0, Some(BEARER), &locked.to_string()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "LinkedAuthorizationFailed");
}

#[test]
fn the_binary_refuses_arm_without_a_certificate() {
    let out = Command::new(env!("CARGO_BIN_EXE_podid-azure-emulator"))
        .args(["--arm-listen", &free_port().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTPS only"));
}
