//! The binaries under test: built here with cargo (the proxy with the `sidecar` profile it ships with), or given by flag.

use std::ffi::OsString;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Paths of the programs the benchmark runs.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// `podid-proxy`, `sidecar` profile.
    pub proxy: PathBuf,
    /// `podid-azure-emulator`, release profile.
    pub emulator: PathBuf,
}

/// The workspace root (this crate is one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds what was not given (a no-op when fresh) and returns the paths.
pub fn get(proxy: Option<PathBuf>, emulator: Option<PathBuf>) -> Result<Artifacts, String> {
    let proxy = match proxy {
        Some(path) => path,
        None => build(
            &["--profile", "sidecar", "-p", "podid-sidecar"],
            "podid-proxy",
            &[],
        )?,
    };
    let emulator = match emulator {
        Some(path) => path,
        None => build(
            &["--release", "-p", "podid-azure-emulator"],
            "podid-azure-emulator",
            &[],
        )?,
    };
    for path in [&proxy, &emulator] {
        if !path.is_file() {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    Ok(Artifacts { proxy, emulator })
}

/// The proxy with the `sidecar` profile, statically linked against glibc
/// (`-C target-feature=+crt-static`): the closest this machine comes to the
/// static musl binary the image ships (docker/Dockerfile) without the musl
/// target. Built in a target directory of its own, so its RUSTFLAGS do not
/// make the ordinary builds start over.
pub fn build_static() -> Result<PathBuf, String> {
    let host = host_triple()?;
    let target_dir = workspace_root().join("target/proxy-bench-static");
    let args = [
        "--profile",
        "sidecar",
        "-p",
        "podid-sidecar",
        "--target",
        &host,
    ];
    let env = [
        ("RUSTFLAGS", "-C target-feature=+crt-static".into()),
        ("CARGO_TARGET_DIR", target_dir.into_os_string()),
    ];
    build(&args, "podid-proxy", &env)
}

/// Under `cargo run`, CARGO is the very cargo (and toolchain) that built this binary.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The host's target triple (`--target` keeps RUSTFLAGS off build scripts and proc macros).
fn host_triple() -> Result<String, String> {
    let out = Command::new(cargo())
        .arg("-vV")
        .output()
        .map_err(|e| format!("cargo -vV: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| format!("cargo -vV names no host: {text}"))
}

/// `cargo build ARGS --bin BIN` with `env`, reading the executable's path from cargo's JSON messages.
fn build(args: &[&str], bin: &str, env: &[(&str, OsString)]) -> Result<PathBuf, String> {
    let mut cmd = Command::new(cargo());
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.current_dir(workspace_root())
        .arg("build")
        .args(args)
        .args(["--bin", bin, "--message-format=json-render-diagnostics"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!(
        "proxy-bench: building {bin} (cargo build {})",
        args.join(" ")
    );
    let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    let mut executable = None;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            executable = executable.or_else(|| artifact_of(&line, bin));
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}"));
    }
    executable.ok_or_else(|| format!("cargo built no executable named {bin}"))
}

/// The executable path of a `compiler-artifact` message for binary `bin`.
fn artifact_of(line: &str, bin: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    let is_bin = message["reason"] == "compiler-artifact" && message["target"]["name"] == bin;
    let path = message["executable"].as_str().filter(|_| is_bin)?;
    Some(PathBuf::from(path))
}
