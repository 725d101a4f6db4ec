//! ARM's answers read: status, `Retry-After`, `{"error": {"code", "message"}}`, and which identities a refusal names.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use podid_core::azure_ids::canonical_id;
use serde_json::Value;

use crate::plan::is_user_assigned_identity_id;
use crate::seams::ArmError;

/// The longest wait a `Retry-After` may impose (a bad value must not park a target for days).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// ARM's codes for "this identity cannot be assigned (or removed) here".
const IDENTITY_CODES: [&str; 4] = [
    "LinkedAuthorizationFailed",
    "FailedIdentityOperation",
    "ResourceNotFound",
    "NotFound",
];

/// One HTTP answer from ARM.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, read whole.
    pub body: Bytes,
}

impl Answer {
    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// How long ARM asks us to wait: `retry-after-ms`, `x-ms-retry-after-ms`,
    /// then `Retry-After` in seconds; capped.
    pub fn retry_after(&self) -> Option<Duration> {
        let millis = ["retry-after-ms", "x-ms-retry-after-ms"]
            .iter()
            .find_map(|h| self.header(h)?.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        let secs = || {
            let v = self.header("retry-after")?.trim().parse::<u64>().ok()?;
            Some(Duration::from_secs(v))
        };
        millis.or_else(secs).map(|d| d.min(MAX_RETRY_AFTER))
    }

    /// `error.code` and `error.message` of an ARM error body (empty when absent).
    pub fn error(&self) -> (String, String) {
        error_fields(&self.json())
    }
}

/// `error.code` and `error.message` of an ARM error document (or an operation status's `error`).
pub fn error_fields(doc: &Value) -> (String, String) {
    let error = doc.get("error").unwrap_or(doc);
    let text = |k: &str| {
        error
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("code"), text("message"))
}

/// What a failed (non-2xx) answer means for the executor.
pub fn classify(answer: &Answer, default_retry_after: Duration) -> ArmError {
    let (code, message) = answer.error();
    let text = match code.is_empty() {
        true => format!("HTTP {}", answer.status),
        false => format!("HTTP {} {code}: {message}", answer.status),
    };
    match answer.status {
        429 => ArmError::Throttled {
            retry_after: answer.retry_after().unwrap_or(default_retry_after),
        },
        401 => ArmError::Unauthorized(text),
        403 => refused(&code, &message, text.clone()).unwrap_or(ArmError::Unauthorized(text)),
        404 => refused_any(&message, text.clone()).unwrap_or(ArmError::TargetNotFound(text)),
        409 => ArmError::Conflict(text),
        400 => refused(&code, &message, text.clone()).unwrap_or(ArmError::Unexpected(text)),
        408 | 500..=599 => ArmError::Transient(text),
        _ => ArmError::Unexpected(text),
    }
}

/// What a long-running operation that ended `Failed` means: a refusal of
/// named identities, or a plain failure (nothing applied).
pub fn classify_failed_operation(error: &Value) -> ArmError {
    let (code, message) = error_fields(error);
    let text = format!("{code}: {message}");
    refused(&code, &message, text.clone()).unwrap_or(ArmError::OperationFailed(text))
}

/// `IdentitiesRefused` when `code` is one of ARM's identity refusals and the
/// message names user-assigned identities.
fn refused(code: &str, message: &str, text: String) -> Option<ArmError> {
    IDENTITY_CODES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(code))
        .then(|| refused_any(message, text))
        .flatten()
}

fn refused_any(message: &str, text: String) -> Option<ArmError> {
    let identities = refused_identities(message);
    (!identities.is_empty()).then_some(ArmError::IdentitiesRefused {
        identities,
        message: text,
    })
}

/// The user-assigned identity ids (canonical, each once, in order) an ARM
/// message names: LinkedAuthorizationFailed lists them comma-separated in
/// quotes, FailedIdentityOperation wraps "Resource '…' was not found." in
/// escaped JSON. Ids of anything else (the VM itself) are ignored.
pub fn refused_identities(message: &str) -> Vec<String> {
    let separators = |c: char| {
        c.is_whitespace() || matches!(c, '\'' | '"' | ',' | ';' | '\\' | '(' | ')' | '[' | ']')
    };
    let mut found: Vec<String> = Vec::new();
    for token in message.split(separators) {
        let Some(start) = token.to_ascii_lowercase().find("/subscriptions/") else {
            continue;
        };
        let id = canonical_id(token[start..].trim_end_matches(['.', ':', '/']));
        if is_user_assigned_identity_id(&id) && !found.contains(&id) {
            found.push(id);
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    const A: &str = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a";
    const B: &str = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id_b";
    const VM: &str =
        "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/vm0";

    fn answer(status: u16, code: &str, message: &str) -> Answer {
        let body = json!({"error": {"code": code, "message": message}});
        Answer {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    fn refused_ids(e: ArmError) -> Vec<String> {
        match e {
            ArmError::IdentitiesRefused { identities, .. } => identities,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn linked_authorization_failure_names_every_listed_identity() {
        let message = format!(
            "The client 'c' with object id 'o' has permission to perform action 'x' on scope '{VM}'; \
             however, it does not have permission to perform action 'assign/action' on the linked \
             scope(s) '{A},{B}' or the linked scope(s) are invalid."
        );
        let e = classify(
            &answer(403, "LinkedAuthorizationFailed", &message),
            Duration::ZERO,
        );
        assert_eq!(refused_ids(e), vec![canonical_id(A), canonical_id(B)]);
    }

    #[test]
    fn failed_identity_operation_names_the_missing_identity_not_the_vm() {
        let inner = json!({"error": {"code": "NotFound",
            "message": format!("Resource '{}' was not found.", A.to_lowercase())}});
        let message = format!(
            "Identity operation for resource '{VM}' failed with error 'Failed to perform resource \
             identity operation. Status: 'NotFound'. Response: '{inner}'.'."
        );
        for status in [400, 404] {
            let e = classify(
                &answer(status, "FailedIdentityOperation", &message),
                Duration::ZERO,
            );
            assert_eq!(refused_ids(e), vec![canonical_id(A)], "status {status}");
        }
    }

    #[test]
    fn a_refusal_naming_no_identity_is_not_a_refusal() {
        let message = format!("Identity operation for resource '{VM}' failed: limit '150'.");
        let e = classify(
            &answer(400, "FailedIdentityOperation", &message),
            Duration::ZERO,
        );
        assert!(matches!(e, ArmError::Unexpected(_)), "{e:?}");
        let e = classify(
            &answer(403, "AuthorizationFailed", &message),
            Duration::ZERO,
        );
        assert!(matches!(e, ArmError::Unauthorized(_)), "{e:?}");
        let e = classify(&answer(404, "ResourceNotFound", "VM gone"), Duration::ZERO);
        assert!(matches!(e, ArmError::TargetNotFound(_)), "{e:?}");
    }

    #[test]
    fn statuses_map_to_what_the_executor_does() {
        let cases = [
            (401, "unauthorized"),
            (409, "conflict"),
            (408, "transient"),
            (500, "transient"),
            (503, "transient"),
            (418, "unexpected"),
            (400, "unexpected"),
        ];
        for (status, kind) in cases {
            assert_eq!(
                classify(&answer(status, "X", "m"), Duration::ZERO).kind(),
                kind
            );
        }
    }

    #[test]
    fn throttling_waits_for_retry_after_or_the_default() {
        let mut a = answer(429, "OperationNotAllowed", "too many");
        let default = Duration::from_secs(7);
        assert_eq!(
            classify(&a, default),
            ArmError::Throttled {
                retry_after: default
            }
        );
        a.headers
            .insert("retry-after", HeaderValue::from_static("12"));
        assert_eq!(a.retry_after(), Some(Duration::from_secs(12)));
        a.headers
            .insert("x-ms-retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(a.retry_after(), Some(Duration::from_millis(1500)));
        a.headers.remove("x-ms-retry-after-ms");
        a.headers
            .insert("retry-after", HeaderValue::from_static("999999"));
        assert_eq!(a.retry_after(), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn failed_operations_are_refusals_only_when_they_name_identities() {
        let plain = json!({"code": "InternalExecutionError", "message": "retry later"});
        assert!(matches!(
            classify_failed_operation(&plain),
            ArmError::OperationFailed(_)
        ));
        let named =
            json!({"code": "LinkedAuthorizationFailed", "message": format!("scope(s) '{A}'")});
        assert_eq!(
            refused_ids(classify_failed_operation(&named)),
            vec![canonical_id(A)]
        );
    }
}
