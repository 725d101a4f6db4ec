//! The test's Azure and Kubernetes world: three identities on one VM, a pod bound to two, and what the webhook renders for it.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Tenant of the identities.
pub const TENANT: &str = "7e57e57e-0000-4000-8000-00000000e2e0";
/// Subscription of the identities.
pub const SUBSCRIPTION: &str = "5ab5c121-0000-4000-8000-00000000e2e0";
/// Resource group of the identities.
pub const GROUP: &str = "rg-podid-e2e";
/// Namespace of the pod and its AzureIdentity objects.
pub const NAMESPACE: &str = "e2e";
/// The pod's name.
pub const POD: &str = "e2e-app";

/// A user-assigned identity as both Azure (the emulator) and Kubernetes (AzureIdentity) know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Name (AzureIdentity and ARM resource name).
    pub name: &'static str,
    /// Client (application) id.
    pub client_id: &'static str,
    /// Principal (object) id.
    pub object_id: &'static str,
}

/// Bound to the pod, its default.
pub const A: Identity = Identity {
    name: "id-a",
    client_id: "aaaaaaaa-0000-4000-8000-0000000000a1",
    object_id: "aaaaaaaa-0000-4000-8000-0000000000a2",
};
/// Bound to the pod, second.
pub const B: Identity = Identity {
    name: "id-b",
    client_id: "bbbbbbbb-0000-4000-8000-0000000000b1",
    object_id: "bbbbbbbb-0000-4000-8000-0000000000b2",
};
/// Assigned to the VM but NOT bound to the pod: the pod must never get its tokens.
pub const C: Identity = Identity {
    name: "id-c",
    client_id: "cccccccc-0000-4000-8000-0000000000c1",
    object_id: "cccccccc-0000-4000-8000-0000000000c2",
};

// === impl Identity ===

impl Identity {
    /// ARM id, as the emulator derives it.
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.name
        )
    }
}

/// The emulator's identities file: A, B and C assigned to VM `vm0`.
pub fn emulator_world() -> String {
    let mut s = format!(
        "tenantId: {TENANT}\nsubscriptionId: {SUBSCRIPTION}\nresourceGroup: {GROUP}\nidentities:\n"
    );
    for id in [A, B, C] {
        s += &format!(
            "  - {{name: {}, clientId: {}, principalId: {}}}\n",
            id.name, id.client_id, id.object_id
        );
    }
    s + "vms:\n  - name: vm0\n    identities: [id-a, id-b, id-c]\n"
}

/// AzureIdentity objects for A, B and C in the pod's namespace (C exists, but the pod does not name it).
pub fn identity_objects() -> String {
    [A, B, C]
        .iter()
        .map(|id| {
            format!(
                "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: {}\n  namespace: {NAMESPACE}\n\
                 spec:\n  type: 0\n  resourceID: {}\n  clientID: {}\n",
                id.name,
                id.resource_id(),
                id.client_id
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The app pod, bound to A (default) and B.
pub fn pod_manifest() -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {POD}\n  namespace: {NAMESPACE}\n  annotations:\n    \
         podid.io/identity: {},{}\nspec:\n  containers:\n    - name: app\n      image: app:1\n      \
         securityContext:\n        runAsUser: 1000\n",
        A.name, B.name
    )
}

/// One injected container as the webhook rendered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// `command` then `args`.
    pub argv: Vec<String>,
    /// `securityContext.runAsUser`.
    pub uid: u32,
    /// `securityContext.capabilities.add`, lower-cased (`net_admin`).
    pub caps: Vec<String>,
    /// Literal `env` values; `fieldRef`s resolved against the pod's name and namespace.
    pub env: Vec<(String, String)>,
}

/// Finds container `name` (in `initContainers` or `containers`) in `podid inject` output
/// (or any pod manifest as admitted); `fieldRef`s resolve against its own name and namespace.
pub fn rendered(inject_yaml: &str, name: &str) -> Result<Rendered, String> {
    let pod: Value =
        serde_yaml::from_str(inject_yaml).map_err(|e| format!("podid inject output: {e}"))?;
    let spec = &pod["spec"];
    let meta =
        |key: &str, default: &str| pod["metadata"][key].as_str().unwrap_or(default).to_owned();
    let (pod_name, pod_namespace) = (meta("name", POD), meta("namespace", NAMESPACE));
    let all = [&spec["initContainers"], &spec["containers"]];
    let c = all
        .iter()
        .filter_map(|list| list.as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .ok_or_else(|| format!("no container {name:?} in:\n{inject_yaml}"))?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut argv = strings(&c["command"]);
    argv.extend(strings(&c["args"]));
    let ctx = &c["securityContext"];
    let env = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let value = match (
                e["value"].as_str(),
                e["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            ) {
                (Some(v), _) => v.to_owned(),
                (None, Some("metadata.name")) => pod_name.clone(),
                (None, Some("metadata.namespace")) => pod_namespace.clone(),
                _ => return None,
            };
            Some((e["name"].as_str()?.to_owned(), value))
        })
        .collect();
    Ok(Rendered {
        argv,
        uid: ctx["runAsUser"]
            .as_u64()
            .and_then(|u| u32::try_from(u).ok())
            .ok_or("no runAsUser")?,
        caps: strings(&ctx["capabilities"]["add"])
            .iter()
            .map(|c| c.to_ascii_lowercase())
            .collect(),
        env,
    })
}

/// The claims (payload) of a JWT; `Null` if `token` is not one.
pub fn jwt_claims(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// The targets of core's `bypass_corpus_is_refused_with_400` (core/src/imds/tests.rs),
/// read from that file so the two lists cannot drift apart.
pub fn bypass_corpus(workspace_root: &Path) -> Result<Vec<String>, String> {
    let path = workspace_root.join("core/src/imds/tests.rs");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body = text
        .split("fn bypass_corpus_is_refused_with_400")
        .nth(1)
        .and_then(|rest| rest.split("let corpus = [").nth(1))
        .and_then(|rest| rest.split("];").next())
        .ok_or_else(|| {
            format!(
                "{}: no `let corpus = [ … ];` in bypass_corpus_is_refused_with_400",
                path.display()
            )
        })?;
    let corpus = string_literals(body)?;
    if corpus.len() < 10 {
        return Err(format!(
            "{}: only {} corpus entries found",
            path.display(),
            corpus.len()
        ));
    }
    Ok(corpus)
}

/// The Rust string literals in `src`, unescaped.
fn string_literals(src: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        loop {
            match chars.next().ok_or("unterminated string literal")? {
                '"' => break,
                '\\' => s.push(match chars.next().ok_or("dangling escape")? {
                    't' => '\t',
                    'n' => '\n',
                    'r' => '\r',
                    '0' => '\0',
                    other @ ('\\' | '"' | '\'') => other,
                    other => return Err(format!("unsupported escape \\{other}")),
                }),
                other => s.push(other),
            }
        }
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn core_bypass_corpus_is_read_with_escapes_undone() {
        let corpus = bypass_corpus(&crate::bins::workspace_root()).unwrap();
        assert!(
            corpus.contains(&"/metadata\\identity\\oauth2\\token".to_owned()),
            "{corpus:?}"
        );
        assert!(
            corpus.contains(&"/metadata/identity/oauth2/token\t".to_owned()),
            "{corpus:?}"
        );
        assert!(
            corpus.contains(&"/metadata/identity%2Foauth2%2Ftoken".to_owned()),
            "{corpus:?}"
        );
    }

    #[test]
    fn injected_containers_are_read_from_inject_output() {
        let yaml = "spec:\n  initContainers:\n  - name: podid-init\n    command: [/usr/local/bin/podid-proxy]\n    \
                    args: [init, --proxy-uid=1501]\n    securityContext:\n      runAsUser: 0\n      \
                    capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}\n  containers:\n  - name: podid-proxy\n    \
                    command: [/usr/local/bin/podid-proxy]\n    args: [serve]\n    env:\n    - {name: A, value: b}\n    \
                    - name: PODID_POD_NAME\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    \
                    securityContext: {runAsUser: 1501}\n";
        let init = rendered(yaml, "podid-init").unwrap();
        assert_eq!(
            init.argv,
            ["/usr/local/bin/podid-proxy", "init", "--proxy-uid=1501"]
        );
        assert_eq!(
            (init.uid, init.caps.as_slice()),
            (0, ["net_admin".to_owned(), "net_raw".to_owned()].as_slice())
        );
        let proxy = rendered(yaml, "podid-proxy").unwrap();
        assert_eq!(proxy.uid, 1501);
        assert_eq!(
            proxy.env,
            [
                ("A".into(), "b".into()),
                ("PODID_POD_NAME".into(), POD.into())
            ]
        );
        assert!(rendered(yaml, "nope").is_err());
    }

    #[test]
    fn world_files_name_every_identity() {
        let world = emulator_world();
        let objects = identity_objects();
        for id in [A, B, C] {
            assert!(world.contains(id.client_id) && objects.contains(id.client_id));
            assert!(objects.contains(&id.resource_id()));
        }
        assert!(pod_manifest().contains("podid.io/identity: id-a,id-b"));
    }
}
