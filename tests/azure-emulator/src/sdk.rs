//! The Python Azure SDK the shape checks run: where it is, and the script that drives it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The script that (de)serializes ARM bodies with azure-mgmt-compute's own models.
pub fn sdk_shape_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_shape.py")
}

/// A python that has azure-mgmt-compute: `PODID_TEST_PYTHON`, else the project
/// venv (`.venv`), else the SDK clients' venv; `None` after saying why not on stderr.
pub fn python_with_azure_mgmt_compute() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates: Vec<PathBuf> = match std::env::var_os("PODID_TEST_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![
            root.join(".venv/bin/python"),
            root.join("tests/clients/python/.venv/bin/python"),
        ],
    };
    let has_sdk = |p: &PathBuf| {
        let probe = Command::new(p)
            .args(["-c", "import azure.mgmt.compute"])
            .output();
        p.exists() && probe.is_ok_and(|o| o.status.success())
    };
    if let Some(found) = candidates.iter().find(|p| has_sdk(p)) {
        return Some(found.clone());
    }
    // Straight to fd 2: libtest captures `eprintln!` and hides it for a passing test.
    let banner = format!(
        "SKIPPED (no azure-mgmt-compute): none of {candidates:?} has it; run scripts/install-test-deps.sh \
         or pip install -r tests/azure-emulator/requirements.txt into .venv\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
    None
}
