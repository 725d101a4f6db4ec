//! The IMDS redirect as data (CONTRACT.md §5): what `iptables-restore --noflush` must be fed, given what is installed.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::names;

/// podid's own chain in the nat table.
pub const CHAIN: &str = "PODID_OUTPUT";
/// podid's own chain in the filter table, used with [`RedirectConfig::reject_imds`].
pub const FILTER_CHAIN: &str = "PODID_IMDS";

/// What the redirect sends where, and whose traffic it leaves alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectConfig {
    /// Connections from this uid are not redirected (the proxy).
    pub proxy_uid: u32,
    /// Local port the proxy listens on.
    pub proxy_port: u16,
    /// The IMDS address.
    pub imds_addr: Ipv4Addr,
    /// The IMDS port.
    pub imds_port: u16,
    /// A pod that needs no IMDS (all identities federated): no uid is exempt from the
    /// redirect, and the filter table rejects every other packet to IMDS ([`plan_filter`]).
    pub reject_imds: bool,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        Self {
            proxy_uid: u32::try_from(names::PROXY_UID).unwrap_or(1501),
            proxy_port: names::PROXY_PORT,
            imds_addr: Ipv4Addr::new(169, 254, 169, 254),
            imds_port: names::IMDS_PORT,
            reject_imds: false,
        }
    }
}

/// The rules to install, as `iptables-restore --noflush` input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Input for `iptables-restore --noflush`.
    pub restore: String,
    /// The rules podid's redirect consists of, as `iptables-save` prints them.
    pub rules: Vec<String>,
}

/// The OUTPUT rule that sends IMDS traffic into podid's chain, as `iptables-save` prints it.
pub fn jump_rule(cfg: &RedirectConfig) -> String {
    format!(
        "-A OUTPUT -d {}/32 -p tcp -m tcp --dport {} -j {CHAIN}",
        cfg.imds_addr, cfg.imds_port
    )
}

/// The rules of podid's chain, as `iptables-save` prints them.
pub fn chain_rules(cfg: &RedirectConfig) -> Vec<String> {
    let exempt = format!(
        "-A {CHAIN} -m owner --uid-owner {} -j RETURN",
        cfg.proxy_uid
    );
    let redirect = format!(
        "-A {CHAIN} -p tcp -j REDIRECT --to-ports {}",
        cfg.proxy_port
    );
    if cfg.reject_imds {
        vec![redirect]
    } else {
        vec![exempt, redirect]
    }
}

/// The filter-table OUTPUT rule that sends every packet to IMDS into [`FILTER_CHAIN`].
///
/// Redirected connections never match it: the nat table's OUTPUT hook runs before the
/// filter table's and has already rewritten their destination to the loopback proxy.
pub fn filter_jump_rule(cfg: &RedirectConfig) -> String {
    format!("-A OUTPUT -d {}/32 -j {FILTER_CHAIN}", cfg.imds_addr)
}

/// The rules of [`FILTER_CHAIN`]: refuse at once (a reset for TCP, port unreachable for
/// the rest) rather than drop, so that a client fails fast instead of timing out.
pub fn filter_chain_rules() -> Vec<String> {
    vec![
        format!("-A {FILTER_CHAIN} -p tcp -j REJECT --reject-with tcp-reset"),
        format!("-A {FILTER_CHAIN} -j REJECT --reject-with icmp-port-unreachable"),
    ]
}

/// Plans the filter-table rejection of IMDS against `iptables-save -t filter` output,
/// with the same guarantees as [`plan`].
pub fn plan_filter(current_filter: &str, cfg: &RedirectConfig) -> Plan {
    plan_table(
        current_filter,
        "filter",
        FILTER_CHAIN,
        filter_jump_rule(cfg),
        filter_chain_rules(),
    )
}

/// Whether `iptables-save -t filter` output shows the rejection fully installed.
pub fn filter_is_installed(current_filter: &str, cfg: &RedirectConfig) -> bool {
    table_is_installed(
        current_filter,
        "filter",
        FILTER_CHAIN,
        &filter_jump_rule(cfg),
        &filter_chain_rules(),
    )
}

/// Plans the redirect against the nat table as `iptables-save -t nat` shows it now.
///
/// # Guarantees
/// Applying the plan and planning again yields a plan that changes nothing:
/// podid's chain is declared (which flushes it under `--noflush`) and refilled,
/// the jump from OUTPUT is added only when missing, and stale jumps to the chain
/// (another port or address from an older release) are deleted. Rules of others
/// are never touched.
pub fn plan(current_nat: &str, cfg: &RedirectConfig) -> Plan {
    plan_table(current_nat, "nat", CHAIN, jump_rule(cfg), chain_rules(cfg))
}

/// Declares (and so flushes) `chain` in `table`, refills it, and keeps exactly one `jump`.
fn plan_table(current: &str, table: &str, chain: &str, jump: String, rules: Vec<String>) -> Plan {
    let jumps: Vec<&str> = table_lines(current, table)
        .filter(|l| l.starts_with("-A OUTPUT ") && l.ends_with(&format!("-j {chain}")))
        .collect();
    let mut restore = format!("*{table}\n:{chain} - [0:0]\n");
    for stale in jumps.iter().filter(|l| **l != jump) {
        let _ = writeln!(restore, "-D{}", &stale[2..]);
    }
    for rule in &rules {
        let _ = writeln!(restore, "{rule}");
    }
    if !jumps.contains(&jump.as_str()) {
        let _ = writeln!(restore, "{jump}");
    }
    restore.push_str("COMMIT\n");
    Plan {
        restore,
        rules: std::iter::once(jump).chain(rules).collect(),
    }
}

/// Whether `iptables-save -t nat` output shows podid's redirect fully installed.
pub fn is_installed(current_nat: &str, cfg: &RedirectConfig) -> bool {
    table_is_installed(
        current_nat,
        "nat",
        CHAIN,
        &jump_rule(cfg),
        &chain_rules(cfg),
    )
}

fn table_is_installed(
    current: &str,
    table: &str,
    chain: &str,
    jump: &str,
    rules: &[String],
) -> bool {
    let lines: Vec<&str> = table_lines(current, table).collect();
    let ours: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with(&format!("-A {chain} ")))
        .collect();
    lines.iter().filter(|l| **l == jump).count() == 1
        && ours == rules.iter().map(String::as_str).collect::<Vec<_>>()
}

/// The rule lines of `table` in `iptables-save` output.
fn table_lines<'a>(save: &'a str, table: &str) -> impl Iterator<Item = &'a str> {
    let header = format!("*{table}");
    let mut inside = false;
    save.lines().map(str::trim).filter(move |l| {
        if l.starts_with('*') {
            inside = *l == header;
            return false;
        }
        inside && l.starts_with("-A ")
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EMPTY: &str = "# Generated by iptables-save v1.8.9 (nf_tables)\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";

    const INSTALLED: &str = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [3:180]\n:PODID_OUTPUT - [0:0]\n-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j PODID_OUTPUT\n-A PODID_OUTPUT -m owner --uid-owner 1501 -j RETURN\n-A PODID_OUTPUT -p tcp -j REDIRECT --to-ports 15391\nCOMMIT\n";

    #[test]
    fn empty_table_gets_chain_rules_and_jump() {
        let p = plan(EMPTY, &RedirectConfig::default());
        assert_eq!(
            p.restore,
            "*nat\n:PODID_OUTPUT - [0:0]\n-A PODID_OUTPUT -m owner --uid-owner 1501 -j RETURN\n\
             -A PODID_OUTPUT -p tcp -j REDIRECT --to-ports 15391\n\
             -A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j PODID_OUTPUT\nCOMMIT\n"
        );
        assert!(!is_installed(EMPTY, &RedirectConfig::default()));
    }

    #[test]
    fn installed_table_is_recognised_and_replanned_without_a_second_jump() {
        let cfg = RedirectConfig::default();
        assert!(is_installed(INSTALLED, &cfg));
        let p = plan(INSTALLED, &cfg);
        assert!(!p.restore.contains("-A OUTPUT"), "{}", p.restore);
        assert!(!p.restore.contains("-D "), "{}", p.restore);
    }

    #[test]
    fn stale_jump_from_another_release_is_replaced() {
        let old = INSTALLED.replace("--dport 80 -j PODID_OUTPUT", "--dport 8080 -j PODID_OUTPUT");
        let p = plan(&old, &RedirectConfig::default());
        assert!(p.restore.contains(
            "-D OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 8080 -j PODID_OUTPUT\n"
        ));
        assert!(p.restore.contains(
            "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j PODID_OUTPUT\n"
        ));
    }

    const FILTER_EMPTY: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 10.0.0.0/8 -j ACCEPT\nCOMMIT\n";

    #[test]
    fn reject_mode_exempts_no_uid_and_rejects_the_rest_in_the_filter_table() {
        let cfg = RedirectConfig {
            reject_imds: true,
            ..RedirectConfig::default()
        };
        let nat = plan(EMPTY, &cfg);
        assert!(!nat.restore.contains("uid-owner"), "{}", nat.restore);
        assert!(
            nat.restore
                .contains("-A PODID_OUTPUT -p tcp -j REDIRECT --to-ports 15391\n")
        );
        let filter = plan_filter(FILTER_EMPTY, &cfg);
        assert_eq!(
            filter.restore,
            "*filter\n:PODID_IMDS - [0:0]\n\
             -A PODID_IMDS -p tcp -j REJECT --reject-with tcp-reset\n\
             -A PODID_IMDS -j REJECT --reject-with icmp-port-unreachable\n\
             -A OUTPUT -d 169.254.169.254/32 -j PODID_IMDS\nCOMMIT\n"
        );
        assert!(!filter_is_installed(FILTER_EMPTY, &cfg));
        // As iptables-save prints the table once the plan is applied (both backends).
        let applied = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:PODID_IMDS - [0:0]\n\
             -A OUTPUT -d 10.0.0.0/8 -j ACCEPT\n-A OUTPUT -d 169.254.169.254/32 -j PODID_IMDS\n\
             -A PODID_IMDS -p tcp -j REJECT --reject-with tcp-reset\n\
             -A PODID_IMDS -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n";
        assert!(filter_is_installed(applied, &cfg));
        let again = plan_filter(applied, &cfg);
        assert!(
            !again.restore.contains("-A OUTPUT") && !again.restore.contains("-D "),
            "{}",
            again.restore
        );
        // The nat table of the ordinary mode is not the reject mode's.
        assert!(!is_installed(INSTALLED, &cfg));
    }

    #[test]
    fn other_tools_rules_are_left_alone() {
        let istio = EMPTY.replace(
            ":POSTROUTING ACCEPT [0:0]\n",
            ":POSTROUTING ACCEPT [0:0]\n:ISTIO_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j ISTIO_OUTPUT\n-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN\n",
        );
        let p = plan(&istio, &RedirectConfig::default());
        assert!(!p.restore.contains("ISTIO"));
        assert!(p.restore.contains("-A OUTPUT -d 169.254.169.254/32"));
    }
}
