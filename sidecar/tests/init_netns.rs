//! `podid-proxy init` for real, in fresh network namespaces, with both iptables backends (root only; skips loudly otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use podid_e2e::netns::Netns;
use podid_e2e::proc::root_or_skip;

const BIN: &str = env!("CARGO_BIN_EXE_podid-proxy");

const RULES: [&str; 3] = [
    "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j PODID_OUTPUT",
    "-A PODID_OUTPUT -m owner --uid-owner 1501 -j RETURN",
    "-A PODID_OUTPUT -p tcp -j REDIRECT --to-ports 15391",
];

/// A fresh network namespace, deleted when dropped, even when the test panics.
fn netns(tag: &str) -> Netns {
    Netns::unique(&format!("podid-init-{tag}")).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `argv` inside `ns`.
fn run(ns: &Netns, argv: &[&str]) -> Output {
    ns.command(argv[0])
        .args(&argv[1..])
        .output()
        .expect("ip netns exec")
}

/// The nat table as `iptables-<backend>-save` prints it.
fn save(ns: &Netns, backend: &str) -> String {
    let out = run(ns, &[&format!("iptables-{backend}-save"), "-t", "nat"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `init --backend=BACKEND FLAGS` twice and checks that each of `rules` is
/// listed both times and installed exactly once, and nothing else (all tables).
fn init_twice_installs_each_rule_once(tag: &str, backend: &str, flags: &[&str], rules: &[&str]) {
    let ns = netns(tag);
    for round in 1..=2 {
        let flag = format!("--backend={backend}");
        let mut argv = vec![BIN, "init", &flag];
        argv.extend(flags);
        let out = run(&ns, &argv);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "round {round}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("iptables-{backend}")),
            "round {round}: {stdout}"
        );
        for rule in rules {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with("podid-init:") && l.ends_with(rule)),
                "round {round}: {rule} not listed in\n{stdout}"
            );
        }
    }
    let saved = text(&run(&ns, &[&format!("iptables-{backend}-save")]).stdout);
    for rule in rules {
        assert_eq!(
            saved.lines().filter(|l| l == rule).count(),
            1,
            "{rule} in\n{saved}"
        );
    }
    assert_eq!(
        saved.lines().filter(|l| l.starts_with("-A ")).count(),
        rules.len(),
        "{saved}"
    );
}

#[test]
fn init_twice_with_nft_installs_each_rule_exactly_once() {
    if root_or_skip("init_twice_with_nft_installs_each_rule_exactly_once") {
        init_twice_installs_each_rule_once("nft", "nft", &[], &RULES);
    }
}

#[test]
fn init_twice_with_legacy_installs_each_rule_exactly_once() {
    if root_or_skip("init_twice_with_legacy_installs_each_rule_exactly_once") {
        init_twice_installs_each_rule_once("legacy", "legacy", &[], &RULES);
    }
}

#[test]
fn auto_backend_joins_the_backend_already_holding_rules() {
    if !root_or_skip("auto_backend_joins_the_backend_already_holding_rules") {
        return;
    }
    for (backend, other) in [("legacy", "nft"), ("nft", "legacy")] {
        let ns = netns(&format!("auto-{backend}"));
        let pre = run(
            &ns,
            &[
                &format!("iptables-{backend}"),
                "-t",
                "filter",
                "-A",
                "OUTPUT",
                "-p",
                "udp",
                "--dport",
                "9",
                "-j",
                "ACCEPT",
            ],
        );
        assert!(pre.status.success(), "{}", text(&pre.stderr));
        let out = run(&ns, &[BIN, "init"]);
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(&format!("with iptables-{backend} ")),
            "{}",
            text(&out.stdout)
        );
        assert!(save(&ns, backend).contains(RULES[0]));
        assert!(
            !save(&ns, other).contains("PODID_OUTPUT"),
            "{other} must be left alone"
        );
    }
}

#[test]
fn dry_run_prints_the_plan_and_installs_nothing() {
    if !root_or_skip("dry_run_prints_the_plan_and_installs_nothing") {
        return;
    }
    let ns = netns("dry");
    let out = run(&ns, &[BIN, "init", "--dry-run", "--backend=nft"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("dry run") && stdout.contains(RULES[2]),
        "{stdout}"
    );
    assert!(!save(&ns, "nft").contains("PODID_OUTPUT"));
}

/// Runs init without NET_ADMIN (`prefix` drops it) and checks for exactly one clear line.
fn assert_refused_with_one_line(ns: &Netns, prefix: &[&str], backend: &str) {
    let mut argv = prefix.to_vec();
    let flag = format!("--backend={backend}");
    argv.extend([BIN, "init", &flag]);
    let out = run(ns, &argv);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{argv:?} succeeded: {stdout}");
    assert_eq!(stdout, "", "{argv:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{argv:?}: want one line, got:\n{stderr}");
    assert!(
        lines[0].starts_with("podid-init: cannot install the IMDS redirect: this container lacks the NET_ADMIN capability ("),
        "{argv:?}: {}",
        lines[0]
    );
}

#[test]
fn init_without_net_admin_fails_with_one_clear_line() {
    if !root_or_skip("init_without_net_admin_fails_with_one_clear_line") {
        return;
    }
    let ns = netns("nocap");
    let nobody = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    // uid 0 without NET_ADMIN: what podid-init is in a pod whose capabilities were dropped.
    let root_without = [
        "setpriv",
        "--bounding-set=-net_admin",
        "--inh-caps=-net_admin",
    ];
    for backend in ["nft", "legacy", "auto"] {
        assert_refused_with_one_line(&ns, &nobody, backend);
        assert_refused_with_one_line(&ns, &root_without, backend);
    }
    assert!(!save(&ns, "nft").contains("PODID_OUTPUT"));
}

/// `--reject-imds` (pods whose identities are all federated), as iptables-save prints
/// it: no `--uid-owner` exemption, and the filter table's rejection.
const REJECT_RULES: [&str; 5] = [
    "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j PODID_OUTPUT",
    "-A PODID_OUTPUT -p tcp -j REDIRECT --to-ports 15391",
    "-A OUTPUT -d 169.254.169.254/32 -j PODID_IMDS",
    "-A PODID_IMDS -p tcp -j REJECT --reject-with tcp-reset",
    "-A PODID_IMDS -j REJECT --reject-with icmp-port-unreachable",
];

#[test]
fn reject_imds_with_nft_redirects_every_uid_and_rejects_the_rest_once() {
    if root_or_skip("reject_imds_with_nft_redirects_every_uid_and_rejects_the_rest_once") {
        init_twice_installs_each_rule_once("reject-nft", "nft", &["--reject-imds"], &REJECT_RULES);
    }
}

#[test]
fn reject_imds_with_legacy_redirects_every_uid_and_rejects_the_rest_once() {
    if root_or_skip("reject_imds_with_legacy_redirects_every_uid_and_rejects_the_rest_once") {
        init_twice_installs_each_rule_once(
            "reject-legacy",
            "legacy",
            &["--reject-imds"],
            &REJECT_RULES,
        );
    }
}
