//! Proxy test helpers: the emulated Azure (IMDS of vm0, Azure AD over HTTPS), a proxy on ephemeral ports, a raw HTTP/1.1 client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use podid_azure_emulator::{
    AzureState, Emulator, EmulatorConfig, ImdsLimits, RegisteredCert, ServicePrincipal,
    decode_claims,
};
use podid_core::proxy_config::ProxyIdentity;
use podid_sidecar::proxy::retry::RetryPolicy;
use podid_sidecar::proxy::{self, Config};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio::sync::oneshot;

/// The VM the pod runs on.
pub const VM: &str = "vm0";
/// Service principal with a secret.
pub const SECRET_CLIENT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
pub const SECRET: &str = "s3cret-value";
/// Service principal with a certificate.
pub const CERT_CLIENT: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
pub const SP_CERT: &str = include_str!("sp-cert.pem");
pub const SP_KEY: &str = include_str!("sp-key.pem");
pub const SP_KEY_PKCS1: &str = include_str!("sp-key-pkcs1.pem");
/// The token path and a query every SDK would send.
pub const TOKEN: &str = "/metadata/identity/oauth2/token";
pub const VAULT: &str = "https://vault.azure.net";

/// The emulated Azure: identities id-a, id-b, id-c; id-a and id-c assigned to
/// vm0 (id-c for some other pod); Azure AD over HTTPS with the two principals.
pub struct World {
    pub emulator: Emulator,
    /// Trusts the Azure AD endpoint's certificate.
    pub roots: rustls::RootCertStore,
}

impl World {
    pub async fn start() -> Self {
        let mut state = AzureState::default();
        for name in ["id-a", "id-b", "id-c"] {
            state.add_identity(name);
        }
        state.add_vm(VM).unwrap();
        let tenant = state.tenant_id.clone();
        state.insert_service_principal(
            ServicePrincipal::new(&tenant, SECRET_CLIENT).with_secret(SECRET),
        );
        let cert = RegisteredCert::from_der(&der(SP_CERT));
        state.insert_service_principal(
            ServicePrincipal::new(&tenant, CERT_CLIENT).with_certificate(cert),
        );
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let tls = podid_azure_emulator::tls_config_from_pem(
            certified.cert.pem().as_bytes(),
            certified.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap();
        let config = EmulatorConfig::loopback(state)
            .with_limits(ImdsLimits::unlimited())
            .with_aad_tls(tls);
        let emulator = Emulator::start(config).await.unwrap();
        emulator.assign_to_vm(VM, "id-a").unwrap();
        emulator.assign_to_vm(VM, "id-c").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        Self { emulator, roots }
    }

    pub fn imds(&self) -> SocketAddr {
        self.emulator.imds_addr(VM).unwrap()
    }

    pub fn tenant(&self) -> String {
        self.emulator.read(|s| s.tenant_id.clone())
    }

    pub fn client_id(&self, name: &str) -> String {
        self.emulator
            .read(|s| s.identity(name).unwrap().client_id.clone())
    }

    pub fn resource_id(&self, name: &str) -> String {
        self.emulator
            .read(|s| s.identity(name).unwrap().resource_id.clone())
    }

    pub fn object_id(&self, name: &str) -> String {
        self.emulator
            .read(|s| s.identity(name).unwrap().principal_id.clone())
    }

    /// The `--identity` of managed identity `name`.
    pub fn msi(&self, name: &str) -> ProxyIdentity {
        let (cid, rid) = (self.client_id(name), self.resource_id(name));
        format!("name={name},type=0,client-id={cid},resource-id={rid}")
            .parse()
            .unwrap()
    }

    /// The `--identity` of a service principal whose Secret is mounted at `dir`.
    pub fn sp(&self, name: &str, kind: u8, client: &str, dir: &Path) -> ProxyIdentity {
        let authority = self.emulator.aad_authority().unwrap();
        let (tenant, dir) = (self.tenant(), dir.display());
        format!("name={name},type={kind},client-id={client},tenant-id={tenant},authority={authority}/,secret-dir={dir}")
            .parse()
            .unwrap()
    }

    /// A proxy configuration for `identities` against this world, on ephemeral
    /// loopback ports, with a short upstream deadline.
    pub fn config(&self, identities: Vec<ProxyIdentity>) -> Config {
        let mut config = Config::new(identities);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.imds_endpoint = self.imds();
        config.tls_roots = Some(self.roots.clone());
        config.retry = RetryPolicy {
            deadline: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(2),
            base: Duration::from_millis(50),
            cap: Duration::from_millis(400),
        };
        config
    }
}

pub fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A proxy serving in a background task; stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn start(config: Config) -> Self {
        let proxy = proxy::bind(config).await.unwrap();
        let (addr, admin) = (proxy.addr(), proxy.admin_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts the shutdown (what SIGTERM does in the binary).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits up to 30 s for `run` to return after [`shutdown`](Self::shutdown).
    pub async fn stopped(&mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the proxy stops in time")
                .expect("the proxy does not panic");
        }
    }

    /// Starts and waits for `/ready`.
    pub async fn ready(config: Config) -> Self {
        let running = Self::start(config).await;
        running.wait_ready().await;
        running
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(self.admin, "/ready", &[]).await.status != 200 {
            assert!(Instant::now() < deadline, "proxy not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A token request with `Metadata: true` for `resource` plus `extra` query.
    pub async fn token(&self, resource: &str, extra: &str) -> Reply {
        let target = format!(
            "{TOKEN}?api-version=2018-02-01&resource={}{extra}",
            enc(resource)
        );
        get(self.addr, &target, &[("Metadata", "true")]).await
    }
}

pub use podid_azure_emulator::client::Reply;

/// What the proxy's tests ask of a 200 token answer.
pub trait TokenReply {
    /// Asserts a 200 token answer (every value a string) and returns the token's claims.
    fn assert_token(&self, resource: &str) -> Value;
}

impl TokenReply for Reply {
    fn assert_token(&self, resource: &str) -> Value {
        assert_eq!(self.status, 200, "body: {}", self.body);
        let v = self.json();
        for key in [
            "access_token",
            "refresh_token",
            "expires_in",
            "expires_on",
            "ext_expires_in",
            "not_before",
            "resource",
            "token_type",
            "client_id",
        ] {
            assert!(v[key].is_string(), "{key} in {v}");
        }
        assert_eq!(v["resource"], resource);
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["refresh_token"], "");
        let claims = decode_claims(v["access_token"].as_str().unwrap());
        assert_eq!(claims["appid"], v["client_id"], "{claims}");
        claims
    }
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", target, headers).await
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Reply {
    podid_azure_emulator::client::request(addr, method, target, headers, "")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `check` every 50 ms until it holds or `secs` pass.
pub async fn eventually(secs: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
