//! The proxy ships in every pod: it must not link the Kubernetes client stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn the_proxy_links_neither_kube_nor_k8s_openapi() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "podid-sidecar",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        tree.lines().any(|l| l.starts_with("podid-sidecar ")),
        "{tree}"
    );
    for forbidden in [
        "kube",
        "kube-client",
        "kube-core",
        "k8s-openapi",
        "reqwest",
        "azure_identity",
        "azure_core",
    ] {
        let linked = tree
            .lines()
            .any(|l| l.split_whitespace().next() == Some(forbidden));
        assert!(!linked, "podid-sidecar links {forbidden}:\n{tree}");
    }
}
