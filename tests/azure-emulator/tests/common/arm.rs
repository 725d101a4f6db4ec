//! ARM helpers: the sample world served over HTTPS with a test certificate, authenticated requests, operation polling.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use podid_azure_emulator::{
    ArmConfig, ArmLimits, AzureState, Emulator, EmulatorConfig, ImdsLimits,
};
use serde_json::Value;

use super::*;

/// The api-version the Azure SDKs of 2026 send for Compute.
pub const API: &str = "api-version=2024-07-01";
/// A token ARM accepts when token checks are off.
pub const BEARER: &str = "Bearer opaque-test-token";

/// An emulator with ARM, and the PEM of the certificate it serves.
pub struct Arm {
    pub e: Emulator,
    pub ca: String,
}

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
pub fn localhost_cert() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// The sample world with ARM unthrottled, plus `config` changes.
pub async fn start_arm(config: ArmConfig) -> Arm {
    start_arm_with(world(), config).await
}

/// `state` with ARM, IMDS unthrottled.
pub async fn start_arm_with(state: AzureState, config: ArmConfig) -> Arm {
    let (cert, key) = localhost_cert();
    let tls = podid_azure_emulator::tls_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let config = EmulatorConfig::loopback(state)
        .with_limits(ImdsLimits::unlimited())
        .with_arm(tls)
        .with_arm_config(config);
    Arm {
        e: Emulator::start(config).await.unwrap(),
        ca: cert,
    }
}

/// One HTTPS request to `addr` (server name `localhost`, trusting `ca`).
pub async fn https(
    addr: std::net::SocketAddr,
    ca: &str,
    method: &str,
    target: &str,
    auth: Option<&str>,
    body: &str,
) -> Reply {
    let stream = tls_connect(addr, ca).await;
    let host = format!("localhost:{}", addr.port());
    let mut headers = vec![
        ("Host", host.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    exchange(stream, method, target, &headers, body).await
}

/// ARM with no throttling and instant operations.
pub fn quick() -> ArmConfig {
    ArmConfig {
        limits: ArmLimits::unlimited(),
        ..ArmConfig::default()
    }
}

impl Arm {
    /// `target` is a path with query; `auth` the whole Authorization value (None: no header).
    pub async fn send(&self, method: &str, target: &str, auth: Option<&str>, body: &str) -> Reply {
        https(
            self.e.arm_addr().unwrap(),
            &self.ca,
            method,
            target,
            auth,
            body,
        )
        .await
    }

    /// Authenticated GET.
    pub async fn get(&self, target: &str) -> Reply {
        self.send("GET", target, Some(BEARER), "").await
    }

    /// Authenticated PATCH with a JSON body.
    pub async fn patch(&self, target: &str, body: &Value) -> Reply {
        self.send("PATCH", target, Some(BEARER), &body.to_string())
            .await
    }

    /// Path and query of VM `name`.
    pub fn vm(&self, name: &str) -> String {
        let id = self.e.read(|s| s.vm(name).unwrap().resource_id.clone());
        format!("{id}?{API}")
    }

    /// Path and query of scale set `name`.
    pub fn vmss(&self, name: &str) -> String {
        let id = self
            .e
            .read(|s| s.scale_set(name).unwrap().resource_id.clone());
        format!("{id}?{API}")
    }

    /// Resource id of identity `name`.
    pub fn id(&self, name: &str) -> String {
        resource_id(&self.e, name)
    }

    /// Path and query of an absolute operation URL from a header.
    pub fn local(url: &str) -> String {
        let rest = url.strip_prefix("https://").unwrap();
        rest[rest.find('/').unwrap()..].to_owned()
    }

    /// Polls the Azure-AsyncOperation URL of `patched` until it is no longer InProgress.
    pub async fn wait(&self, patched: &Reply) -> Value {
        let url = patched
            .header("azure-asyncoperation")
            .expect("Azure-AsyncOperation header");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(&Self::local(url)).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            if v["status"] != "InProgress" {
                return v;
            }
            assert!(Instant::now() < deadline, "operation still running: {v}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
