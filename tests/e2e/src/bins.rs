//! The programs under test: built before the tests run (or by the first test, when run on their own), and placed where uids 1000 and 1501 can run them.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of everything the end-to-end test runs.
#[derive(Debug)]
pub struct Bins {
    /// `podid-proxy` (init and serve).
    pub proxy: PathBuf,
    /// `podid-azure-emulator`.
    pub emulator: PathBuf,
    /// `podid` (the CLI that renders what the webhook injects).
    pub podid: PathBuf,
    /// `podid-sdk-client-rust`.
    pub rust_client: PathBuf,
    /// `podid-node-guard`.
    pub node_guard: PathBuf,
    /// `podid-e2e-http`.
    pub http: PathBuf,
    /// `tests/clients/python` (with its `.venv`).
    pub python_dir: PathBuf,
    /// `tests/clients/node` (with its `node_modules`).
    pub node_dir: PathBuf,
    /// Holds the copies made when the work tree is not readable by other uids.
    _staging: Option<tempfile::TempDir>,
}

/// Set by `scripts/run-tests.sh`, which runs [`BUILD_ARGS`] before nextest:
/// the programs in the target directory are current, and no test may run
/// cargo. (Cargo re-links `target/<profile>/<bin>` on every build, fresh or
/// not, so a build in one test process briefly removes a program that
/// another test process is starting.)
pub const PREBUILT_ENV: &str = "PODID_E2E_PREBUILT";

/// The build that produces every program, with the feature set `cargo nextest
/// run --workspace --all-features` resolves: run again after it, it is a
/// no-op, and it never leaves a second variant of a program behind.
pub const BUILD_ARGS: [&str; 4] = ["build", "--workspace", "--all-features", "--bins"];

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds (once per process) and locates everything; `http` is the caller's
/// `env!("CARGO_BIN_EXE_podid-e2e-http")`.
pub fn get(http: &str) -> Result<&'static Bins, String> {
    static BINS: OnceLock<Result<Bins, String>> = OnceLock::new();
    BINS.get_or_init(|| prepare(Path::new(http)))
        .as_ref()
        .map_err(Clone::clone)
}

fn prepare(http: &Path) -> Result<Bins, String> {
    // The test binary lives in <target>/<profile>/deps/; the programs in <target>/<profile>/.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?
        .to_path_buf();
    let prebuilt = std::env::var_os(PREBUILT_ENV).is_some();
    if !prebuilt {
        build(&out_dir)?;
    }
    let bins = Bins::in_dir(&out_dir, http).map_err(|e| match prebuilt {
        true => format!("{e} ({PREBUILT_ENV} is set, so the tests do not build)"),
        false => e,
    })?;
    for (installed, what) in [
        (
            bins.python_dir.join(".venv/bin/python"),
            "the Python client's venv",
        ),
        (
            bins.node_dir.join("node_modules/@azure/identity"),
            "the Node client's node_modules",
        ),
    ] {
        if !installed.exists() {
            return Err(format!(
                "{what} is missing ({}): run scripts/install-test-deps.sh",
                installed.display()
            ));
        }
    }
    Ok(bins)
}

impl Bins {
    /// The programs built into `out_dir` (`target/<profile>`), `http` being
    /// podid-e2e-http, and the SDK clients of the work tree (which need
    /// scripts/install-test-deps.sh for Python and Node; Rust's is a program).
    /// Copied to a world-readable place when uids 1000 and 1501 could not run them.
    pub fn in_dir(out_dir: &Path, http: &Path) -> Result<Self, String> {
        let clients = workspace_root().join("tests/clients");
        let mut bins = Bins {
            proxy: out_dir.join("podid-proxy"),
            emulator: out_dir.join("podid-azure-emulator"),
            podid: out_dir.join("podid"),
            rust_client: out_dir.join("podid-sdk-client-rust"),
            node_guard: out_dir.join("podid-node-guard"),
            http: http.to_path_buf(),
            python_dir: clients.join("python"),
            node_dir: clients.join("node"),
            _staging: None,
        };
        for program in [
            &bins.proxy,
            &bins.emulator,
            &bins.podid,
            &bins.rust_client,
            &bins.node_guard,
            &bins.http,
        ] {
            if !program.is_file() {
                return Err(format!(
                    "{} is missing: run `cargo {}`",
                    program.display(),
                    BUILD_ARGS.join(" ")
                ));
            }
        }
        if !readable_by_others(out_dir) || !readable_by_others(&clients) {
            stage(&mut bins)?;
        }
        Ok(bins)
    }
}

/// `cargo build` of the programs, in the profile the test itself was built in.
fn build(out_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(BUILD_ARGS)
        .arg("--quiet");
    match out_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether other uids can reach `path`: every directory on the way is world-searchable.
fn readable_by_others(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    path.ancestors()
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Copies the programs and clients into a world-readable temporary directory.
fn stage(bins: &mut Bins) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("podid-e2e-bins-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    for path in [
        &mut bins.proxy,
        &mut bins.emulator,
        &mut bins.podid,
        &mut bins.rust_client,
        &mut bins.node_guard,
        &mut bins.http,
    ] {
        *path = copy(path, dir.path())?;
    }
    for path in [&mut bins.python_dir, &mut bins.node_dir] {
        // A client that is not installed is not needed by whoever got this far.
        if path.exists() {
            *path = copy(path, dir.path())?;
        }
    }
    bins._staging = Some(dir);
    Ok(())
}

fn copy(from: &Path, to_dir: &Path) -> Result<PathBuf, String> {
    let name = from.file_name().ok_or("no file name")?;
    let to = to_dir.join(name);
    // `cp -a` keeps the venv's symlinks and modes.
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(&to)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "cp -a {}: {}",
            from.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(to)
}
