//! The init flow against a fake iptables that applies `--noflush` input like the real one.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;

use super::*;

/// A fake backend: `None` when its binaries are missing, else the nat rules it holds.
#[derive(Debug, Default)]
struct Fake {
    nft: Option<Vec<String>>,
    legacy: Option<Vec<String>>,
    /// Every call, in order (`save nft`, `restore legacy`, …).
    calls: RefCell<Vec<String>>,
    /// Makes every call fail as iptables does without NET_ADMIN.
    denied: bool,
    /// Makes restore succeed without changing anything.
    restore_is_a_no_op: bool,
    applied: RefCell<Option<Vec<String>>>,
}

impl Fake {
    fn both_empty() -> Self {
        Self {
            nft: Some(vec![]),
            legacy: Some(vec![]),
            ..Self::default()
        }
    }

    fn rules(&self, flavor: Flavor) -> Option<Vec<String>> {
        if let Some(applied) = self.applied.borrow().clone() {
            return Some(applied);
        }
        match flavor {
            Flavor::Nft => self.nft.clone(),
            Flavor::Legacy => self.legacy.clone(),
        }
    }
}

/// `iptables-save` of one table (`None`: all, shown as nat): the filter table holds the
/// rules of and jumps to podid's filter chain, nat all others.
fn render(table: Option<&str>, rules: &[String]) -> String {
    let filter = |r: &&String| r.contains(podid_core::iptables::FILTER_CHAIN);
    let (header, rules): (&str, Vec<&String>) = match table {
        Some("filter") => ("*filter", rules.iter().filter(filter).collect()),
        _ => ("*nat", rules.iter().filter(|r| !filter(r)).collect()),
    };
    let mut s = format!("{header}\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for r in rules {
        s.push_str(r);
        s.push('\n');
    }
    s + "COMMIT\n"
}

impl Iptables for Fake {
    fn save(&self, flavor: Flavor, table: Option<&str>) -> Result<String, ToolError> {
        let tool = flavor.save_bin();
        self.calls
            .borrow_mut()
            .push(format!("save {} {table:?}", flavor.name()));
        let rules = self.rules(flavor).ok_or(ToolError::NotFound { tool })?;
        if self.denied {
            return Err(ToolError::Failed {
                tool,
                status: "exit status: 4".into(),
                stderr: format!(
                    "{tool} v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n"
                ),
            });
        }
        Ok(render(table, &rules))
    }

    fn restore(&self, flavor: Flavor, input: &str) -> Result<(), ToolError> {
        self.calls
            .borrow_mut()
            .push(format!("restore {}", flavor.name()));
        if self.restore_is_a_no_op {
            return Ok(());
        }
        let mut rules = self.rules(flavor).unwrap();
        for line in input.lines() {
            if let Some(chain) = line.strip_prefix(':').and_then(|l| l.split(' ').next()) {
                rules.retain(|r| !r.starts_with(&format!("-A {chain} ")));
            } else if line.starts_with("-A ") {
                rules.push(line.to_owned());
            } else if let Some(rest) = line.strip_prefix("-D ") {
                let target = format!("-A {rest}");
                rules.retain(|r| *r != target);
            }
        }
        *self.applied.borrow_mut() = Some(rules);
        Ok(())
    }
}

fn args(backend: Backend, dry_run: bool) -> InitArgs {
    InitArgs {
        proxy_uid: 1501,
        proxy_port: 15391,
        backend,
        dry_run,
        reject_imds: false,
    }
}

const EXPECTED: [&str; 3] = [
    "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j PODID_OUTPUT",
    "-A PODID_OUTPUT -m owner --uid-owner 1501 -j RETURN",
    "-A PODID_OUTPUT -p tcp -j REDIRECT --to-ports 15391",
];

#[test]
fn auto_prefers_the_backend_that_already_holds_rules() {
    let kube =
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j KUBE-FIREWALL\n-A INPUT -j ACCEPT\nCOMMIT\n";
    let one = "*nat\n-A OUTPUT -j X\nCOMMIT\n";
    assert_eq!(pick(Some(""), Some(kube)), Some(Flavor::Legacy));
    assert_eq!(pick(Some(kube), Some("")), Some(Flavor::Nft));
    assert_eq!(pick(Some(one), Some(kube)), Some(Flavor::Legacy));
    assert_eq!(
        pick(Some(kube), Some(kube)),
        Some(Flavor::Nft),
        "a tie goes to nft"
    );
    assert_eq!(
        pick(Some(""), Some("")),
        Some(Flavor::Nft),
        "nothing anywhere: nft"
    );
    let warning =
        "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n";
    assert_eq!(pick(Some(warning), Some(one)), Some(Flavor::Legacy));
}

#[test]
fn auto_falls_back_to_whichever_backend_is_installed() {
    assert_eq!(pick(None, Some("")), Some(Flavor::Legacy));
    assert_eq!(pick(Some(""), None), Some(Flavor::Nft));
    assert_eq!(pick(None, None), None);
}

#[test]
fn init_installs_checks_and_lists_the_rules() {
    let fake = Fake::both_empty();
    let outcome = run(&args(Backend::Auto, false), &fake, Some(true)).unwrap();
    let Outcome::Installed {
        flavor,
        rules,
        was_installed,
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!((*flavor, *was_installed), (Flavor::Nft, false));
    assert_eq!(rules, &EXPECTED);
    let lines = report(&outcome);
    assert_eq!(
        lines[0],
        "podid-init: IMDS redirect installed with iptables-nft (nat table):"
    );
    for rule in EXPECTED {
        assert!(
            lines.contains(&format!("podid-init:   {rule}")),
            "{lines:?}"
        );
    }
    assert_eq!(
        *fake.calls.borrow(),
        [
            "save iptables-nft None",
            "save iptables-legacy None",
            "save iptables-nft Some(\"nat\")",
            "restore iptables-nft",
            "save iptables-nft Some(\"nat\")"
        ]
    );
}

#[test]
fn running_init_twice_leaves_one_copy_of_each_rule() {
    let fake = Fake::both_empty();
    run(&args(Backend::Legacy, false), &fake, None).unwrap();
    let again = run(&args(Backend::Legacy, false), &fake, None).unwrap();
    assert!(matches!(
        again,
        Outcome::Installed {
            was_installed: true,
            ..
        }
    ));
    assert_eq!(fake.applied.borrow().clone().unwrap(), EXPECTED);
    assert!(report(&again)[0].contains("already installed"));
}

#[test]
fn explicit_backend_skips_detection() {
    let fake = Fake {
        nft: None,
        ..Fake::both_empty()
    };
    run(&args(Backend::Legacy, false), &fake, None).unwrap();
    assert!(
        fake.calls.borrow().iter().all(|c| c.contains("legacy")),
        "{:?}",
        fake.calls.borrow()
    );
}

#[test]
fn without_net_admin_init_fails_with_one_line_naming_the_capability() {
    let fake = Fake {
        denied: true,
        ..Fake::both_empty()
    };
    let err = run(&args(Backend::Auto, false), &fake, Some(false)).unwrap_err();
    assert_eq!(
        err.line(),
        "podid-init: cannot install the IMDS redirect: this container lacks the NET_ADMIN capability \
         (iptables-nft-save: Could not fetch rule set generation id: Permission denied (you must be root))"
    );
}

#[test]
fn missing_iptables_fails_with_one_line_naming_the_binary() {
    let fake = Fake::default();
    let err = run(&args(Backend::Auto, false), &fake, Some(true)).unwrap_err();
    assert!(
        err.line().contains("iptables-nft-save not found in PATH"),
        "{}",
        err.line()
    );
    let err = run(&args(Backend::Legacy, false), &fake, Some(true)).unwrap_err();
    assert!(
        err.line()
            .contains("iptables-legacy-save not found in PATH"),
        "{}",
        err.line()
    );
}

#[test]
fn a_restore_that_does_not_take_effect_is_an_error() {
    let fake = Fake {
        restore_is_a_no_op: true,
        ..Fake::both_empty()
    };
    let err = run(&args(Backend::Nft, false), &fake, Some(true)).unwrap_err();
    let line = err.line();
    assert!(
        line.contains(
            "iptables-nft-restore succeeded but iptables-nft-save does not show the redirect"
        ),
        "{line}"
    );
    assert!(line.contains(EXPECTED[0]), "{line}");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let fake = Fake::both_empty();
    let outcome = run(&args(Backend::Auto, true), &fake, Some(true)).unwrap();
    assert!(
        fake.calls.borrow().iter().all(|c| c.starts_with("save")),
        "{:?}",
        fake.calls.borrow()
    );
    let lines = report(&outcome);
    assert_eq!(
        lines[0],
        "podid-init: dry run: would feed iptables-nft-restore --noflush:"
    );
    assert!(
        lines.contains(&"podid-init:   :PODID_OUTPUT - [0:0]".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("podid-init:   {}", EXPECTED[0])),
        "{lines:?}"
    );
}

#[test]
fn dry_run_without_net_admin_plans_against_an_empty_table_and_says_so() {
    let fake = Fake {
        denied: true,
        ..Fake::both_empty()
    };
    let outcome = run(&args(Backend::Auto, true), &fake, Some(false)).unwrap();
    let Outcome::Planned { plan, note, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(plan.restore.contains(EXPECTED[0]));
    assert!(note.as_deref().unwrap().contains("NET_ADMIN"), "{note:?}");
}

#[test]
fn custom_uid_and_port_reach_the_rules() {
    let fake = Fake::both_empty();
    let a = InitArgs {
        proxy_uid: 2000,
        proxy_port: 16000,
        ..args(Backend::Nft, false)
    };
    let Outcome::Installed { rules, .. } = run(&a, &fake, None).unwrap() else {
        panic!()
    };
    assert!(rules.contains(&"-A PODID_OUTPUT -m owner --uid-owner 2000 -j RETURN".to_owned()));
    assert!(rules.contains(&"-A PODID_OUTPUT -p tcp -j REDIRECT --to-ports 16000".to_owned()));
}

#[test]
fn reject_mode_redirects_every_uid_then_rejects_the_rest_and_says_so() {
    let fake = Fake::both_empty();
    let a = InitArgs {
        reject_imds: true,
        ..args(Backend::Nft, false)
    };
    let outcome = run(&a, &fake, None).unwrap();
    let Outcome::Installed { rules, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(!rules.iter().any(|r| r.contains("uid-owner")), "{rules:?}");
    assert!(rules.contains(&"-A OUTPUT -d 169.254.169.254/32 -j PODID_IMDS".to_owned()));
    assert!(
        rules.contains(&"-A PODID_IMDS -j REJECT --reject-with icmp-port-unreachable".to_owned())
    );
    assert!(report(&outcome)[0].contains("every other packet to IMDS rejected"));
    let calls = fake.calls.borrow().clone();
    let nat_restore = calls.iter().position(|c| c == "restore iptables-nft");
    let filter_restore = calls.iter().rposition(|c| c == "restore iptables-nft");
    assert!(nat_restore < filter_restore, "{calls:?}");
    // Run again: the same rules, reported as already there.
    let again = run(&a, &fake, None).unwrap();
    let Outcome::Installed {
        rules: second,
        was_installed,
        ..
    } = again
    else {
        panic!()
    };
    assert_eq!((&second, was_installed), (rules, true));
    // A dry run shows both tables' input.
    let Outcome::Planned { plan, .. } =
        run(&InitArgs { dry_run: true, ..a }, &Fake::both_empty(), None).unwrap()
    else {
        panic!()
    };
    assert!(
        plan.restore.contains("*nat\n") && plan.restore.contains("*filter\n"),
        "{}",
        plan.restore
    );
}
