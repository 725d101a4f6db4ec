//! The workload-identity-federation world: A and B federated to the pod's service account, C a managed identity on the VM, the stand-in as Entra ID (HTTPS) and as the cluster's OIDC issuer.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use podid_azure_emulator::oidc::{SaToken, ServiceAccountIssuer};

use crate::netns::{IMDS_IP, NODE_SERVICES_IP};
use crate::pod::Scenario;
use crate::world::{A, B, C, GROUP, NAMESPACE, POD, SUBSCRIPTION, TENANT};

/// The pod's service account.
pub const SERVICE_ACCOUNT: &str = "e2e-app";
/// The cluster's service-account issuer, as a federated credential names it.
pub const ISSUER: &str = "https://oidc.podid.test/e2e-cluster";
/// The audience the webhook renders for the projected token.
pub const AUDIENCE: &str = "api://AzureADTokenExchange";
/// A second port the node's IMDS answers on in this world (the real one answers on 80 only).
pub const IMDS_SECOND_PORT: u16 = 8080;
/// Where the stand-in's Entra ID listens (HTTPS), in the node.
pub fn authority() -> String {
    format!("https://{NODE_SERVICES_IP}:8443")
}

/// The issuer key, the test CA and the token directory, for as long as the test runs.
#[derive(Debug)]
pub struct Federation {
    issuer: ServiceAccountIssuer,
    dir: tempfile::TempDir,
}

// === impl Federation ===

impl Federation {
    /// A fresh issuer key, and a CA plus a serving certificate for [`authority`].
    pub fn new() -> Result<Self, String> {
        let issuer = ServiceAccountIssuer::generate(ISSUER).map_err(|e| e.to_string())?;
        let dir = tempfile::Builder::new()
            .prefix("podid-e2e-federation-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let fed = Self { issuer, dir };
        fed.write("issuer.pk8", fed.issuer.pkcs8())?;
        fed.write_tls()?;
        std::fs::create_dir(fed.token_dir()).map_err(|e| e.to_string())?;
        // The proxy (uid 1501) reads the CA and the token.
        for path in [fed.dir.path().to_owned(), fed.token_dir()] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
        }
        fed.write_token(SERVICE_ACCOUNT)?;
        Ok(fed)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        std::fs::write(self.path(name), bytes).map_err(|e| format!("{name}: {e}"))
    }

    fn write_tls(&self) -> Result<(), String> {
        let err = |e: rcgen::Error| e.to_string();
        let ca_key = rcgen::KeyPair::generate().map_err(err)?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let leaf = rcgen::CertificateParams::new(vec![NODE_SERVICES_IP.to_owned()]).map_err(err)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let cert = leaf.signed_by(&key, &issuer).map_err(err)?;
        self.write("ca.pem", ca_cert.pem().as_bytes())?;
        self.write("tls.crt", cert.pem().as_bytes())?;
        self.write("tls.key", key.serialize_pem().as_bytes())
    }

    /// The directory the proxy sees as its projected token volume.
    pub fn token_dir(&self) -> PathBuf {
        self.path("token")
    }

    /// Writes a fresh token for `service_account` of the pod's namespace, as the
    /// kubelet rotates it: a new file renamed over the old.
    pub fn write_token(&self, service_account: &str) -> Result<(), String> {
        let now = podid_azure_emulator::ids::unix_now();
        let token = self.issuer.mint(&SaToken {
            namespace: NAMESPACE,
            service_account,
            audiences: &[AUDIENCE],
            issued_at: now,
            lifetime_secs: 3600,
        });
        let (tmp, file) = (
            self.token_dir().join(".token.tmp"),
            self.token_dir().join("token"),
        );
        std::fs::write(&tmp, token).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &file).map_err(|e| e.to_string())
    }

    /// The pod bound to federated A (default) and B, with C a managed identity on its VM.
    pub fn scenario(&self) -> Scenario {
        Scenario {
            pod_manifest: pod_manifest(),
            identity_objects: identity_objects(),
            emulator_world: emulator_world(&self.path("issuer.pk8")),
            emulator_args: vec![
                // The node's IMDS on a second port too, which only the filter table's REJECT stops.
                format!("--vm=name=vm0,listen={IMDS_IP}:{IMDS_SECOND_PORT}"),
                format!("--aad-listen={NODE_SERVICES_IP}:8443"),
                format!("--aad-tls-cert={}", self.path("tls.crt").display()),
                format!("--aad-tls-key={}", self.path("tls.key").display()),
            ],
            proxy_env: vec![(
                "SSL_CERT_FILE".to_owned(),
                self.path("ca.pem").display().to_string(),
            )],
            token_dir: Some(self.token_dir()),
        }
    }
}

/// The subject Entra ID expects for the pod's service account.
pub fn subject() -> String {
    format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}")
}

/// A and B carry a federated credential for the pod's service account and are on no
/// VM; C is a managed identity assigned to the VM (what an attacker would want).
fn emulator_world(issuer_key: &Path) -> String {
    let mut s = format!(
        "tenantId: {TENANT}\nsubscriptionId: {SUBSCRIPTION}\nresourceGroup: {GROUP}\n\
         oidcIssuers:\n  - {{issuer: '{ISSUER}', keyFile: '{}'}}\nidentities:\n",
        issuer_key.display()
    );
    for id in [A, B] {
        s += &format!(
            "  - name: {}\n    clientId: {}\n    principalId: {}\n    federatedCredentials:\n      \
             - {{issuer: '{ISSUER}', subject: '{}', audiences: ['{AUDIENCE}']}}\n",
            id.name,
            id.client_id,
            id.object_id,
            subject()
        );
    }
    s += &format!(
        "  - {{name: {}, clientId: {}, principalId: {}}}\n",
        C.name, C.client_id, C.object_id
    );
    s + &format!("vms:\n  - name: vm0\n    identities: [{}]\n", C.name)
}

/// A and B federated (annotation, tenant, the stand-in's authority, no resourceID); C as type 0.
pub fn identity_objects() -> String {
    let federated = [A, B].map(|id| {
        format!(
            "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: {}\n  namespace: {NAMESPACE}\n  \
             annotations:\n    podid.io/credential: federated\nspec:\n  type: 0\n  clientID: {}\n  tenantID: {TENANT}\n  \
             adEndpoint: {}\n",
            id.name,
            id.client_id,
            authority()
        )
    });
    let c = format!(
        "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: {}\n  namespace: {NAMESPACE}\n\
         spec:\n  type: 0\n  resourceID: {}\n  clientID: {}\n",
        C.name,
        C.resource_id(),
        C.client_id
    );
    [federated[0].clone(), federated[1].clone(), c].join("---\n")
}

/// The app pod, bound to A (default) and B, with its own service account.
pub fn pod_manifest() -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {POD}\n  namespace: {NAMESPACE}\n  annotations:\n    \
         podid.io/identity: {},{}\nspec:\n  serviceAccountName: {SERVICE_ACCOUNT}\n  containers:\n    - name: app\n      \
         image: app:1\n      securityContext:\n        runAsUser: 1000\n",
        A.name, B.name
    )
}
