//! Telling podid's own earlier injection (reinvocation, `podid inject` output) from a fake one.
//!
//! A pod may arrive already carrying `podid-init` and `podid-proxy`. It is accepted
//! without a patch only if those containers are what podid renders for this pod now:
//! otherwise a pod author could run anything as the proxy's uid, which the redirect
//! lets through to the node's IMDS.

use std::borrow::Cow;

use serde_json::Value;

use super::render::Rendered;
use crate::names;
use crate::pod::{ContainerList, PodView};

/// Fields that the API server's defaulting or admission plugins (LimitRanger) may
/// fill in or change on an injected container before reinvocation. They are not
/// compared: none of them changes what the container runs or as whom.
const DEFAULTED_FIELDS: &[&str] = &[
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "timeoutSeconds",
    "successThreshold",
    "scheme",
    "protocol",
    "resources",
    // Defaulted on regular containers with requests when in-place resize is on (legacy layout).
    "resizePolicy",
];

/// Where the ServiceAccount admission plugin mounts the API token. Reinvocation re-runs
/// the in-tree plugins before the webhooks, and this one mounts the token into every
/// container that lacks it, podid's too. A read-only mount there changes neither what
/// the container runs nor as whom, so it is not compared.
const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Checks a pod that already carries both injected containers; `Err` says what differs.
///
/// Compares whole containers and volumes, so it reads the whole object again
/// ([`PodView::full_object`]); a pod that reaches this is being reinvoked, which is rare.
pub fn verify_injected(pod: &PodView<'_>, rendered: &Rendered, native: bool) -> Result<(), String> {
    let (init_list, proxy_list) = if native {
        (ContainerList::Init, ContainerList::Init)
    } else {
        (ContainerList::Init, ContainerList::Regular)
    };
    let object = pod.full_object()?;
    check_container(&object, init_list, names::INIT_CONTAINER, &rendered.init)?;
    check_container(&object, proxy_list, names::PROXY_CONTAINER, &rendered.proxy)?;
    let volumes = list(&object, "volumes");
    for volume in &rendered.volumes {
        let name = volume
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let found = volumes
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(name));
        match found {
            Some(v) if covers(volume, v) => {}
            _ => {
                return Err(format!(
                    "volume {name:?} is missing or differs from what podid injects"
                ));
            }
        }
    }
    Ok(())
}

/// `spec.<field>` of the object as received; empty when absent or not a list.
fn list<'v>(object: &'v Value, field: &str) -> &'v [Value] {
    object
        .get("spec")
        .and_then(|s| s.get(field))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn check_container(
    object: &Value,
    list_of: ContainerList,
    name: &str,
    want: &Value,
) -> Result<(), String> {
    let found = list(object, list_of.field())
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str).unwrap_or_default() == name);
    let Some(have) = found else {
        return Err(format!(
            "container {name:?} is not in spec.{} where podid puts it",
            list_of.field()
        ));
    };
    if covers(want, &without_service_account_mount(have)) {
        Ok(())
    } else {
        Err(format!(
            "container {name:?} differs from what podid injects"
        ))
    }
}

/// `c` without the read-only ServiceAccount token mount (and without `volumeMounts` if that was all).
fn without_service_account_mount(c: &Value) -> Cow<'_, Value> {
    let is_token = |m: &Value| {
        m.get("mountPath").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_MOUNT_PATH)
            && m.get("readOnly").and_then(Value::as_bool) == Some(true)
    };
    let Some(mounts) = c.get("volumeMounts").and_then(Value::as_array) else {
        return Cow::Borrowed(c);
    };
    if !mounts.iter().any(is_token) {
        return Cow::Borrowed(c);
    }
    let kept: Vec<Value> = mounts.iter().filter(|m| !is_token(m)).cloned().collect();
    let mut c = c.clone();
    if let Some(fields) = c.as_object_mut() {
        if kept.is_empty() {
            fields.remove("volumeMounts");
        } else {
            fields.insert("volumeMounts".to_owned(), Value::Array(kept));
        }
    }
    Cow::Owned(c)
}

/// Whether `have` equals `want`, leaving aside the [`DEFAULTED_FIELDS`].
fn covers(want: &Value, have: &Value) -> bool {
    let compared = |k: &String| !DEFAULTED_FIELDS.contains(&k.as_str());
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            w.iter()
                .filter(|(k, _)| compared(k))
                .all(|(k, wv)| h.get(k).is_some_and(|hv| covers(wv, hv)))
                && h.keys().filter(|k| compared(k)).all(|k| w.contains_key(k))
        }
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| covers(a, b))
        }
        (Value::Number(w), Value::Number(h)) => w.as_f64() == h.as_f64(),
        _ => want == have,
    }
}

#[cfg(test)]
mod tests {
    use super::{covers, without_service_account_mount};
    use serde_json::json;

    #[test]
    fn only_the_read_only_service_account_token_mount_is_tolerated() {
        let want = json!({"name": "p", "volumeMounts": [{"name": "lock", "mountPath": "/run"}]});
        let token = json!({"name": "kube-api-access-abcde", "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
        let with_token =
            json!({"name": "p", "volumeMounts": [{"name": "lock", "mountPath": "/run"}, token]});
        assert!(covers(&want, &without_service_account_mount(&with_token)));
        let only_token = json!({"name": "p", "volumeMounts": [token]});
        assert!(covers(
            &json!({"name": "p"}),
            &without_service_account_mount(&only_token)
        ));

        let writable = json!({"name": "p", "volumeMounts": [{"name": "lock", "mountPath": "/run"},
            {"name": "x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]});
        assert!(!covers(&want, &without_service_account_mount(&writable)));
        let elsewhere = json!({"name": "p", "volumeMounts": [{"name": "lock", "mountPath": "/run"},
            {"name": "kube-api-access-abcde", "readOnly": true, "mountPath": "/usr/local/bin"}]});
        assert!(!covers(&want, &without_service_account_mount(&elsewhere)));
    }

    #[test]
    fn defaults_are_tolerated_but_additions_that_change_behaviour_are_not() {
        let want = json!({"name": "p", "command": ["/x"], "startupProbe": {"httpGet": {"path": "/ready", "port": 1}}});
        let defaulted = json!({"name": "p", "command": ["/x"], "terminationMessagePath": "/dev/termination-log",
            "startupProbe": {"httpGet": {"path": "/ready", "port": 1, "scheme": "HTTP"}, "timeoutSeconds": 1}});
        assert!(covers(&want, &defaulted));
        let hooked = json!({"name": "p", "command": ["/x"], "lifecycle": {"postStart": {"exec": {"command": ["sh"]}}},
            "startupProbe": {"httpGet": {"path": "/ready", "port": 1}}});
        assert!(!covers(&want, &hooked));
        let other_command = json!({"name": "p", "command": ["/y"], "startupProbe": {"httpGet": {"path": "/ready", "port": 1}}});
        assert!(!covers(&want, &other_command));
    }
}
