//! Every name a user types or a cluster sees (CONTRACT.md): one place, so code, chart and docs agree.

/// Namespace label that opts a namespace in, and pod label that opts a pod out.
pub const INJECT_LABEL: &str = "podid.io/inject";
/// Value of [`INJECT_LABEL`] on a namespace that opts in.
pub const INJECT_ENABLED: &str = "enabled";
/// Value of [`INJECT_LABEL`] on a pod that opts out.
pub const INJECT_DISABLED: &str = "disabled";
/// Pod annotation naming the AzureIdentity objects a pod may use; the first is the default.
pub const IDENTITY_ANNOTATION: &str = "podid.io/identity";
/// aad-pod-identity's pod label, matched for equality against AzureIdentityBinding `spec.selector`.
pub const AAD_BINDING_LABEL: &str = "aadpodidbinding";
/// Annotation recording what the webhook injected (JSON, see [`crate::status`]).
pub const STATUS_ANNOTATION: &str = "podid.io/status";
/// Label set on injected pods so the controller can watch only those.
pub const INJECTED_LABEL: &str = "podid.io/injected";
/// kubectl's default-container annotation, set to the first app container.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// Annotation the kubelet sets on mirror pods of static pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// AKS's label on its own add-on pods.
pub const AKS_MANAGED_BY_LABEL: &str = "kubernetes.azure.com/managedby";
/// Value of [`AKS_MANAGED_BY_LABEL`] that excludes a pod.
pub const AKS_MANAGED_BY_VALUE: &str = "aks";
/// Pod condition type the controller maintains.
pub const CONDITION_IDENTITY_ASSIGNED: &str = "podid.io/IdentityAssigned";

/// The init container that installs the redirect.
pub const INIT_CONTAINER: &str = "podid-init";
/// The IMDS proxy sidecar.
pub const PROXY_CONTAINER: &str = "podid-proxy";
/// Environment variable every app container gets, the default identity's client id.
pub const AZURE_CLIENT_ID_ENV: &str = "AZURE_CLIENT_ID";

/// uid and gid of the proxy; connections from this uid are not redirected.
pub const PROXY_UID: i64 = 1501;
/// Port the proxy serves IMDS on (loopback only; the redirect target).
pub const PROXY_PORT: u16 = 15391;
/// Port of the proxy's `/ready`, `/live` and `/metrics`.
pub const PROXY_ADMIN_PORT: u16 = 15392;
/// Address of the Instance Metadata Service.
pub const IMDS_ADDR: &str = "169.254.169.254";
/// Port of the Instance Metadata Service.
pub const IMDS_PORT: u16 = 80;
/// The one token path IMDS serves.
pub const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// Webhook HTTPS port in the pod.
pub const WEBHOOK_PORT: u16 = 8443;
/// Webhook plain-HTTP probes and metrics port.
pub const WEBHOOK_ADMIN_PORT: u16 = 8080;
/// Webhook path the MutatingWebhookConfiguration calls.
pub const WEBHOOK_PATH: &str = "/mutate";

/// API group of the identity resources (aad-pod-identity's).
pub const IDENTITY_GROUP: &str = "aadpodidentity.k8s.io";
/// API version of the identity resources.
pub const IDENTITY_VERSION: &str = "v1";
/// `apiVersion` of the identity resources.
pub const IDENTITY_API_VERSION: &str = "aadpodidentity.k8s.io/v1";
/// Kind of the identity resource.
pub const AZURE_IDENTITY_KIND: &str = "AzureIdentity";
/// Kind of the binding resource.
pub const AZURE_IDENTITY_BINDING_KIND: &str = "AzureIdentityBinding";

/// Namespaces that are never injected, whatever their labels (the release namespace is added at install).
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Where a service principal's Secret is mounted in the proxy: `<dir>/<identity name>/`.
pub const SP_SECRET_MOUNT_DIR: &str = "/var/run/secrets/podid";
/// Key of a type-1 identity's client secret in its Secret (aad-pod-identity's).
pub const SP_SECRET_KEY: &str = "clientsecret";
/// Key of a type-2 identity's PEM or PKCS#12 certificate in its Secret (aad-pod-identity's).
pub const SP_CERTIFICATE_KEY: &str = "certificate";
/// Key of a type-2 identity's certificate password in its Secret (aad-pod-identity's).
pub const SP_CERTIFICATE_PASSWORD_KEY: &str = "password";

/// AzureIdentity annotation choosing where the proxy gets the identity's tokens.
pub const CREDENTIAL_ANNOTATION: &str = "podid.io/credential";
/// Value of [`CREDENTIAL_ANNOTATION`]: workload identity federation, Entra ID's token
/// endpoint with the pod's projected service-account token as client assertion.
pub const CREDENTIAL_FEDERATED: &str = "federated";
/// Audience of the projected service-account token Entra ID exchanges.
pub const FEDERATED_TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Lifetime asked for the projected token (the kubelet rotates it at 80 %).
pub const FEDERATED_TOKEN_EXPIRATION_SECS: i64 = 3600;
/// Where the projected service-account token is mounted, in the proxy only.
pub const FEDERATED_TOKEN_DIR: &str = "/var/run/secrets/podid-federated";
/// The token file's path in the proxy.
pub const FEDERATED_TOKEN_PATH: &str = "/var/run/secrets/podid-federated/token";

/// Start of `podid-proxy`'s termination message when it refuses to run on a node that cannot guarantee its exemption.
pub const FAILED_CLOSED_PREFIX: &str = "podid-proxy failed closed";
