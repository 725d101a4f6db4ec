//! The identities file and the `podid-azure-emulator` binary: flags, file, serving, graceful SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use podid_azure_emulator::file::{self, VmFlag, WorldFile};
use podid_azure_emulator::resolve::{Selector, resolve};

const EXAMPLE: &str = r#"
tenantId: 33333333-3333-4333-8333-333333333333
subscriptionId: 44444444-4444-4444-8444-444444444444
resourceGroup: rg-test
identities:
  - name: id-a
  - name: id-b
    clientId: 0b0b0b0b-0000-4000-8000-000000000000
    resourceGroup: other-rg
scaleSets:
  - name: ss0
    identities: [id-b]
vms:
  - name: vm0
    identities: [id-a]
  - name: ss0-0
    scaleSet: ss0
servicePrincipals:
  - clientId: 0c0c0c0c-0000-4000-8000-000000000000
    secrets: [hunter2]
    certificateFiles: [sp-cert.pem]
    certificateThumbprints: ["00112233445566778899aabbccddeeff00112233"]
"#;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

#[test]
fn identities_file_builds_the_world_it_describes() {
    let parsed: WorldFile = serde_yaml::from_str(EXAMPLE).unwrap();
    let (state, listens) = file::build(&parsed, fixtures()).unwrap();
    assert!(listens.is_empty());
    assert_eq!(state.tenant_id, "33333333-3333-4333-8333-333333333333");
    let b = state
        .identity("0b0b0b0b-0000-4000-8000-000000000000")
        .unwrap();
    assert!(b.resource_id.contains("/resourceGroups/other-rg/"));
    assert_eq!(b.tenant_id, state.tenant_id);
    let found = resolve(&state, "ss0-0", &Selector::Default).unwrap();
    assert_eq!(found.client_id, b.client_id);
    let a = state.identity("id-a").unwrap();
    assert_eq!(
        resolve(&state, "vm0", &Selector::Default)
            .unwrap()
            .client_id,
        a.client_id
    );
    let sp = state
        .service_principal("0C0C0C0C-0000-4000-8000-000000000000")
        .unwrap();
    assert_eq!(sp.certificates.len(), 2);
    assert!(sp.certificates[0].der.is_some() && sp.certificates[1].der.is_none());
}

#[test]
fn identities_file_refuses_unknown_fields_and_references() {
    assert!(serde_yaml::from_str::<WorldFile>("vms: [{name: a, bogus: 1}]").is_err());
    let dangling: WorldFile = serde_yaml::from_str("vms: [{name: a, identities: [nope]}]").unwrap();
    assert!(file::build(&dangling, fixtures()).is_err());
    let json: WorldFile =
        serde_yaml::from_str(r#"{"vms": [{"name": "a", "systemAssigned": true}]}"#).unwrap();
    let (state, _) = file::build(&json, fixtures()).unwrap();
    assert!(resolve(&state, "a", &Selector::Default).unwrap().system);
}

#[test]
fn vm_flags_parse() {
    let flag: VmFlag = "name=vm3,listen=127.0.0.1:1234,scale-set=ss9"
        .parse()
        .unwrap();
    assert_eq!(flag.name, "vm3");
    assert_eq!(flag.listen, "127.0.0.1:1234".parse::<SocketAddr>().unwrap());
    assert_eq!(flag.scale_set.as_deref(), Some("ss9"));
    for bad in [
        "name=vm3",
        "listen=127.0.0.1:1",
        "name=a,listen=nope",
        "name=a,listen=127.0.0.1:1,x=y",
    ] {
        assert!(bad.parse::<VmFlag>().is_err(), "{bad}");
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "emulator did not listen on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends SIGTERM and waits (bounded) for the exit status.
async fn stop_with_sigterm(mut child: Child) -> ExitStatus {
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "emulator ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn binary_serves_the_file_and_flags_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("sp-cert.pem");
    std::fs::copy(fixtures().join("sp-cert.pem"), cert).unwrap();
    let path = dir.path().join("world.yaml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let (vm0, ss1, aad) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_podid-azure-emulator"))
        .arg("--identities")
        .arg(&path)
        .args(["--imds-listen", &vm0.to_string()])
        .args(["--vm", &format!("name=ss0-1,listen={ss1},scale-set=ss0")])
        .args(["--aad-listen", &aad.to_string(), "--log-format", "json"])
        .env("PODID_EMULATOR_IMDS_RATE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for addr in [vm0, ss1, aad] {
        wait_listening(addr).await;
    }
    assert_eq!(imds_token(vm0, "").await.status, 200);
    // The flag-created instance joins ss0 and so gets ss0's identity.
    let r = imds_token(ss1, "").await;
    assert_eq!(
        r.json()["client_id"],
        "0b0b0b0b-0000-4000-8000-000000000000"
    );
    let body = "client_id=0c0c0c0c-0000-4000-8000-000000000000&grant_type=client_credentials\
                &scope=api%3A%2F%2Fx%2F.default&client_secret=hunter2";
    let target = "/33333333-3333-4333-8333-333333333333/oauth2/v2.0/token";
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = request(aad, "POST", target, &form, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let status = stop_with_sigterm(child).await;
    assert!(status.success(), "{status:?}");
}

#[test]
fn binary_refuses_a_bad_identities_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "vms: [{name: a, identities: [missing]}]").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_podid-azure-emulator"))
        .arg("--identities")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown identity"));
}
