//! The AdmissionReview podid answers with, written straight to bytes.
//!
//! Building the answer as a `serde_json::Value` and serializing it cost more than
//! parsing the request (the 5 KB base64 patch was copied into the `Value`, then
//! scanned byte by byte for characters to escape). The answer has a fixed shape, so it
//! is typed here and written directly: strings from the request or the planner are
//! escaped by serde_json, the base64 alphabet never needs escaping and is encoded
//! straight into the output buffer.

use std::fmt;

use base64::Engine as _;
use serde_json::Value;

use super::{ADMISSION_API_VERSION, ADMISSION_KIND};
use crate::inject::Decision;

/// The `response` of an AdmissionReview podid sends back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    uid: String,
    verdict: Verdict,
    warnings: Vec<String>,
}

/// Allowed (with or without a patch) or denied.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    /// Allowed unchanged.
    Allowed,
    /// Allowed with this JSON Patch (its JSON text; base64-encoded when written).
    Patched(Vec<u8>),
    /// Denied with HTTP-style status 403 and this message.
    Denied(String),
}

impl Answer {
    /// Admits the object unchanged.
    pub fn allowed(uid: &str) -> Self {
        Self::new(uid, Verdict::Allowed)
    }

    /// Denies the object: status 403 `Forbidden` with `message`.
    pub fn denied(uid: &str, message: &str) -> Self {
        Self::new(uid, Verdict::Denied(message.to_owned()))
    }

    /// The answer to `uid` for the planner's `decision`.
    pub fn for_decision(uid: &str, decision: &Decision) -> Self {
        match decision {
            Decision::Skip { warnings, .. } => Self::allowed(uid).with_warnings(warnings),
            Decision::Inject {
                patch, warnings, ..
            } => {
                // A Patch of Values always serializes; an empty patch would still be well-formed.
                let json = serde_json::to_vec(patch).unwrap_or_else(|_| b"[]".to_vec());
                Self::new(uid, Verdict::Patched(json)).with_warnings(warnings)
            }
            Decision::Deny { message, .. } => Self::denied(uid, message),
        }
    }

    fn new(uid: &str, verdict: Verdict) -> Self {
        Self {
            uid: uid.to_owned(),
            verdict,
            warnings: Vec::new(),
        }
    }

    fn with_warnings(mut self, warnings: &[String]) -> Self {
        self.warnings = warnings.to_vec();
        self
    }

    /// The `request.uid` this answers.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The whole AdmissionReview as JSON bytes, ready to send.
    pub fn to_bytes(&self) -> Vec<u8> {
        let patch_len = match &self.verdict {
            Verdict::Patched(json) => base64::encoded_len(json.len(), true).unwrap_or(0),
            _ => 0,
        };
        let mut out = Vec::with_capacity(160 + self.uid.len() + patch_len);
        self.write(&mut out);
        out
    }

    /// The AdmissionReview as a `Value`, for callers that inspect it (tests, tools).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.to_bytes()).unwrap_or(Value::Null)
    }

    /// Writes the AdmissionReview; keys in the order the `Value` answer had them.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"apiVersion\":");
        string(out, ADMISSION_API_VERSION);
        out.extend_from_slice(b",\"kind\":");
        string(out, ADMISSION_KIND);
        out.extend_from_slice(b",\"response\":{\"uid\":");
        string(out, &self.uid);
        match &self.verdict {
            Verdict::Allowed => out.extend_from_slice(b",\"allowed\":true"),
            Verdict::Patched(json) => {
                out.extend_from_slice(
                    b",\"allowed\":true,\"patchType\":\"JSONPatch\",\"patch\":\"",
                );
                base64_into(out, json);
                out.push(b'"');
            }
            Verdict::Denied(message) => {
                out.extend_from_slice(
                    b",\"allowed\":false,\"status\":{\"code\":403,\"reason\":\"Forbidden\",\"message\":",
                );
                string(out, message);
                out.push(b'}');
            }
        }
        if !self.warnings.is_empty() {
            out.extend_from_slice(b",\"warnings\":[");
            for (i, warning) in self.warnings.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, warning);
            }
            out.push(b']');
        }
        out.extend_from_slice(b"}}");
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// Appends `s` as a JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail; serde_json's escaping is the one the Value path used.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends the standard, padded base64 of `bytes`, encoded in place.
fn base64_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bytes_are_the_json_the_value_answer_was() {
        let patched = Answer {
            uid: "u\"1\n".into(),
            verdict: Verdict::Patched(br#"[{"op":"add"}]"#.to_vec()),
            warnings: vec!["a \"quoted\" warning".into(), "é".into()],
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(br#"[{"op":"add"}]"#);
        let expected = json!({"apiVersion": ADMISSION_API_VERSION, "kind": ADMISSION_KIND,
            "response": {"uid": "u\"1\n", "allowed": true, "patchType": "JSONPatch",
                "patch": encoded, "warnings": ["a \"quoted\" warning", "é"]}});
        assert_eq!(patched.to_bytes(), serde_json::to_vec(&expected).unwrap());
        let denied = Answer::denied("u", "no \\ way");
        let expected = json!({"apiVersion": ADMISSION_API_VERSION, "kind": ADMISSION_KIND,
            "response": {"uid": "u", "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": "no \\ way"}}});
        assert_eq!(denied.to_bytes(), serde_json::to_vec(&expected).unwrap());
        assert_eq!(denied.to_value(), expected);
        let allowed = Answer::allowed("u");
        assert_eq!(
            allowed.to_string(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":true}}"#
        );
    }
}
