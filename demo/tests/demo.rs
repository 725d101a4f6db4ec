//! `make demo` itself: the lines it prints, as root and without, and that a signal leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use podid_demo::cleanup::descendants;
use podid_e2e::proc::{root_or_skip, run_bounded};

const DEMO: &str = env!("CARGO_BIN_EXE_podid-demo");
/// The promise is under a minute after the build; this bounds a hang, it is not a benchmark.
const LIMIT: Duration = Duration::from_secs(120);

fn run(args: &[&str]) -> (bool, Vec<String>, String) {
    let mut cmd = Command::new(DEMO);
    cmd.args(args);
    let out = run_bounded(cmd, None, LIMIT).unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success(),
        stdout.lines().map(str::to_owned).collect(),
        format!("{stdout}\n{stderr}"),
    )
}

/// The line of step `name`, which must have `status` and contain every one of `words`.
fn expect_step(lines: &[String], name: &str, status: &str, words: &[&str], all: &str) {
    let line = lines
        .iter()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for step {name}:\n{all}"));
    assert_eq!(
        line.split_whitespace().nth(1),
        Some(status),
        "{line}\n{all}"
    );
    for word in words {
        assert!(
            line.contains(word),
            "step {name} does not say {word:?}: {line}"
        );
    }
}

fn expect_cluster_steps(lines: &[String], all: &str) {
    expect_step(
        lines,
        "stand-in",
        "ok",
        &[
            "IMDS of vm0",
            "Entra ID https://localhost:",
            "ARM https://localhost:",
        ],
        all,
    );
    expect_step(
        lines,
        "webhook",
        "ok",
        &["podid-webhook.podid-system.svc", "/readyz 200"],
        all,
    );
    expect_step(
        lines,
        "admit",
        "ok",
        &[
            "TLSv1_",
            "ALPN http/1.1",
            "podid-init",
            "podid-proxy",
            "AZURE_CLIENT_ID",
        ],
        all,
    );
    expect_step(
        lines,
        "deny",
        "ok",
        &[
            "(403)",
            "AzureIdentity \"team-b-writer\" not found in namespace \"demo\"",
        ],
        all,
    );
    expect_step(
        lines,
        "controller",
        "ok",
        &["1 PATCH", "400 before, 200 after", "IdentityAssigned"],
        all,
    );
}

#[test]
fn without_root_it_runs_every_step_that_needs_none_and_names_the_skipped() {
    let (ok, lines, all) = run(&["--without-root"]);
    assert!(ok, "{all}");
    expect_cluster_steps(&lines, &all);
    for step in ["pod-init", "pod-proxy", "sdk-own", "sdk-foreign"] {
        expect_step(&lines, step, "skipped", &["--without-root"], &all);
    }
    expect_step(
        &lines,
        "demo",
        "done",
        &["5 steps ok, 4 skipped", "stopped and removed"],
        &all,
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" ms)") || !l.contains(" ok ")),
        "every step says how long it took:\n{all}"
    );
}

#[test]
fn as_root_the_pod_gets_its_own_token_and_a_403_for_the_foreign_one() {
    if !root_or_skip("as_root_the_pod_gets_its_own_token_and_a_403_for_the_foreign_one") {
        return;
    }
    let (ok, lines, all) = run(&[]);
    assert!(ok, "{all}");
    expect_cluster_steps(&lines, &all);
    expect_step(
        &lines,
        "pod-init",
        "ok",
        &[
            "uid 0",
            "NET_ADMIN,NET_RAW",
            "169.254.169.254:80 -> 127.0.0.1:15391",
        ],
        &all,
    );
    expect_step(&lines, "pod-proxy", "ok", &["uid 1501", "/ready 200"], &all);
    expect_step(
        &lines,
        "sdk-own",
        "ok",
        &[
            "token for storage-reader",
            "5701a6e0-0000-4000-8000-0000000000a1",
        ],
        &all,
    );
    expect_step(
        &lines,
        "sdk-foreign",
        "ok",
        &["team-b-writer", "refused", "\"forbidden\""],
        &all,
    );
    expect_step(&lines, "demo", "done", &["9 steps ok, 0 skipped"], &all);
}

/// Reads `child`'s stdout lines on a thread (so waiting for one is bounded).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn sigterm_mid_run_stops_everything_and_leaves_nothing_behind() {
    let mut child = Command::new(DEMO)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let rx = lines_of(&mut child);
    let mut seen = Vec::new();
    // Wait until the stand-in, the webhook and (as root) the namespaces exist.
    while !seen.iter().any(|l: &String| l.starts_with("deny")) {
        match rx.recv_timeout(LIMIT) {
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("no deny line ({e}): {seen:?}");
            }
        }
    }
    let started = descendants(pid);
    assert!(
        !started.is_empty(),
        "the demo runs its programs as children"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut last = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        last = line;
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{last}");
    assert!(
        last.contains("stopped  by SIGTERM") && last.contains("nothing left behind"),
        "{last}"
    );
    for p in started {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "process {p} survived"
        );
    }
    let netns = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten();
    let ours = format!("-demo-{pid}-");
    assert!(
        netns
            .filter(|e| e.file_name().to_string_lossy().contains(&ours))
            .count()
            == 0,
        "a namespace survived"
    );
}
