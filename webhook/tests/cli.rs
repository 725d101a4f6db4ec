//! The built binaries: `podid inject` on manifests, `podid-webhook --help`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde::Deserialize as _;
use serde_json::Value;
use support::{
    KEYVAULT_READER_CLIENT_ID, STORAGE_READER_CLIENT_ID, assert_injected_native, assert_preserved,
    container, container_names, fixture_path,
};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// A command for `binary` with no `PODID_*` variables leaking in from the environment.
fn command(binary: &str) -> Command {
    let mut cmd = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PODID_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `podid inject -f <file> --identities-file examples/identities.yaml <extra…>`.
fn inject(file: &PathBuf, extra: &[&str]) -> Output {
    command(env!("CARGO_BIN_EXE_podid"))
        .arg("inject")
        .arg("-f")
        .arg(file)
        .arg("--identities-file")
        .arg(example("identities.yaml"))
        .args(extra)
        .output()
        .expect("podid runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The YAML documents of a successful run's stdout.
fn documents(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(out)
    );
    let text = String::from_utf8(out.stdout.clone()).expect("UTF-8 output");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("output is YAML"))
        .collect()
}

/// The YAML documents of a file.
fn read_documents(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn example_pod_is_printed_with_podid_init_and_podid_proxy() {
    let out = inject(&example("pod.yaml"), &[]);

    let docs = documents(&out);
    assert_eq!(docs.len(), 1);
    assert_injected_native(&docs[0], STORAGE_READER_CLIENT_ID);
    assert_preserved(&read_documents(&example("pod.yaml"))[0], &docs[0]);
}

#[test]
fn manifest_on_stdin_is_injected() {
    let mut child = command(env!("CARGO_BIN_EXE_podid"))
        .args(["inject", "-f", "-", "--identities-file"])
        .arg(example("identities.yaml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let manifest = std::fs::read(example("pod.yaml")).unwrap();
    child.stdin.take().unwrap().write_all(&manifest).unwrap();
    let out = child.wait_with_output().unwrap();

    assert_injected_native(&documents(&out)[0], STORAGE_READER_CLIENT_ID);
}

#[test]
fn deployment_template_is_injected() {
    let file = fixture_path("cli/deployment.yaml");

    let docs = documents(&inject(&file, &[]));

    let template = &docs[0]["spec"]["template"];
    assert_injected_native(template, KEYVAULT_READER_CLIENT_ID);
    assert_preserved(&read_documents(&file)[0], &docs[0]);
    assert_eq!(docs[0]["spec"]["replicas"], 2);
}

#[test]
fn cronjob_job_template_is_injected() {
    let file = fixture_path("cli/cronjob.yaml");

    let docs = documents(&inject(&file, &[]));

    let template = &docs[0]["spec"]["jobTemplate"]["spec"]["template"];
    assert_injected_native(template, STORAGE_READER_CLIENT_ID);
    assert_preserved(&read_documents(&file)[0], &docs[0]);
}

#[test]
fn multi_document_file_injects_the_deployment_and_passes_the_service_through() {
    let file = fixture_path("cli/deployment-and-service.yaml");
    let input = read_documents(&file);

    let docs = documents(&inject(&file, &[]));

    assert_eq!(docs.len(), 2);
    assert_injected_native(&docs[0]["spec"]["template"], STORAGE_READER_CLIENT_ID);
    assert_eq!(docs[1], input[1], "the Service must pass through unchanged");
}

#[test]
fn pod_naming_a_missing_identity_exits_1_with_the_denial() {
    let out = inject(&fixture_path("cli/missing-identity-pod.yaml"), &[]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "nothing is printed for a denied manifest"
    );
    let err = stderr(&out);
    assert!(err.contains(r#"pod "apps/orphan""#), "{err}");
    assert!(
        err.contains(r#"AzureIdentity "does-not-exist" not found in namespace "apps""#),
        "{err}"
    );
}

#[test]
fn native_sidecars_never_puts_the_proxy_first_among_regular_containers() {
    let out = inject(&example("pod.yaml"), &["--native-sidecars", "never"]);

    let pod = &documents(&out)[0];
    assert_eq!(container_names(pod, "initContainers"), ["podid-init"]);
    assert_eq!(container_names(pod, "containers"), ["podid-proxy", "app"]);
    let proxy = container(pod, "containers", "podid-proxy");
    assert!(proxy.get("restartPolicy").is_none(), "{proxy}");
    assert!(proxy["lifecycle"]["postStart"].is_object(), "{proxy}");
    let status = pod["metadata"]["annotations"]["podid.io/status"]
        .as_str()
        .unwrap();
    assert!(status.contains(r#""layout":"legacy""#), "{status}");
}

#[test]
fn unparsable_input_fails_with_a_clear_message() {
    let file = fixture_path("cli/not-yaml.yaml");

    let out = inject(&file, &[]);

    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.starts_with("podid inject: "), "{err}");
    assert!(err.contains("not-yaml.yaml"), "{err}");
    assert!(err.contains("not valid YAML/JSON"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");

    let missing = inject(&fixture_path("cli/no-such-file.yaml"), &[]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no-such-file.yaml"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn webhook_help_lists_the_serving_flags() {
    let out = command(env!("CARGO_BIN_EXE_podid-webhook"))
        .arg("--help")
        .output()
        .expect("podid-webhook runs");

    assert!(out.status.success(), "{}", stderr(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--admin-listen",
        "--tls-cert",
        "--tls-key",
        "--identities-file",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
