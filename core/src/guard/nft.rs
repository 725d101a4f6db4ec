//! The guard's nftables rules as `nft -f -` transactions: a full sync that replaces everything at once, and element deltas.
//!
//! # Guarantees
//! - Every script is one transaction: the kernel applies all of it or none.
//! - [`full_sync`] never deletes the table: it creates what is missing,
//!   replaces the set's elements and the chains' rules in the same
//!   transaction, so a guard that restarts leaves the previous rules
//!   protecting until its first sync, and never installs a dropping chain
//!   before its set is filled.
//! - [`delta`] is safe against drift: an element is added before it is
//!   deleted, so deleting an address the kernel no longer holds cannot fail
//!   the transaction.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Default table name (`table ip podid_guard`).
pub const DEFAULT_TABLE: &str = "podid_guard";
/// The set of allowed pod addresses.
pub const SET: &str = "allowed";
/// The nat chain that sends blocked TCP to IMDS to the responder.
pub const NAT_CHAIN: &str = "imds_nat";
/// The filter chain that drops whatever else blocked pods send to IMDS.
pub const FILTER_CHAIN: &str = "imds_filter";

/// Where the rules send blocked traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleConfig {
    /// The table's name (family `ip`).
    pub table: String,
    /// The IMDS address and port.
    pub imds: SocketAddrV4,
    /// Where blocked TCP to IMDS goes: `Some(addr)` is a DNAT to that address
    /// and port (the node's IP); `None` is a redirect to [`Self::responder_port`]
    /// on the address of the interface the packet came in on.
    pub responder_ip: Option<Ipv4Addr>,
    /// The responder's port.
    pub responder_port: u16,
}

/// The elements to add to and remove from the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetDelta {
    /// Addresses to add.
    pub add: BTreeSet<Ipv4Addr>,
    /// Addresses to remove.
    pub remove: BTreeSet<Ipv4Addr>,
}

// === impl SetDelta ===

impl SetDelta {
    /// What turns `old` into `new`.
    pub fn between(old: &BTreeSet<Ipv4Addr>, new: &BTreeSet<Ipv4Addr>) -> Self {
        Self {
            add: new.difference(old).copied().collect(),
            remove: old.difference(new).copied().collect(),
        }
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

fn elements(ips: &BTreeSet<Ipv4Addr>) -> String {
    let list: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
    list.join(", ")
}

/// The element changes as one transaction; empty when nothing changes.
pub fn delta(cfg: &RuleConfig, change: &SetDelta) -> String {
    let mut s = String::new();
    let target = format!("ip {} {SET}", cfg.table);
    if !change.add.is_empty() {
        let _ = writeln!(s, "add element {target} {{ {} }}", elements(&change.add));
    }
    if !change.remove.is_empty() {
        let removed = elements(&change.remove);
        let _ = writeln!(s, "add element {target} {{ {removed} }}");
        let _ = writeln!(s, "delete element {target} {{ {removed} }}");
    }
    s
}

/// The whole rule set with `allowed` as the set's contents, as one transaction.
pub fn full_sync(cfg: &RuleConfig, allowed: &BTreeSet<Ipv4Addr>) -> String {
    let t = &cfg.table;
    let (imds_ip, imds_port) = (cfg.imds.ip(), cfg.imds.port());
    let target = match cfg.responder_ip {
        Some(ip) => format!("dnat to {ip}:{}", cfg.responder_port),
        None => format!("redirect to :{}", cfg.responder_port),
    };
    let mut s = String::new();
    let _ = writeln!(s, "add table ip {t}");
    let _ = writeln!(s, "add set ip {t} {SET} {{ type ipv4_addr; }}");
    // dstnat: before routing; the filter chain runs after it, so connections
    // sent to the responder no longer carry IMDS's address there.
    let _ = writeln!(
        s,
        "add chain ip {t} {NAT_CHAIN} {{ type nat hook prerouting priority dstnat; policy accept; }}"
    );
    let _ = writeln!(
        s,
        "add chain ip {t} {FILTER_CHAIN} {{ type filter hook prerouting priority dstnat + 10; policy accept; }}"
    );
    let _ = writeln!(s, "flush set ip {t} {SET}");
    if !allowed.is_empty() {
        let _ = writeln!(s, "add element ip {t} {SET} {{ {} }}", elements(allowed));
    }
    let _ = writeln!(s, "flush chain ip {t} {NAT_CHAIN}");
    let _ = writeln!(s, "flush chain ip {t} {FILTER_CHAIN}");
    // Looped-back packets are the node's own (host network): never touched.
    let imds = format!("ip daddr {imds_ip}");
    let blocked = format!("ip saddr != @{SET}");
    let _ = writeln!(s, "add rule ip {t} {NAT_CHAIN} iifname \"lo\" return");
    let _ = writeln!(
        s,
        "add rule ip {t} {NAT_CHAIN} {imds} tcp dport {imds_port} {blocked} counter {target}"
    );
    let _ = writeln!(s, "add rule ip {t} {FILTER_CHAIN} iifname \"lo\" return");
    let _ = writeln!(
        s,
        "add rule ip {t} {FILTER_CHAIN} {imds} {blocked} counter drop"
    );
    s
}

/// Removes the guard's table (uninstall), whether or not it exists: the
/// `add` makes the `delete` unable to fail.
pub fn remove(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(responder_ip: Option<Ipv4Addr>) -> RuleConfig {
        RuleConfig {
            table: DEFAULT_TABLE.into(),
            imds: "169.254.169.254:80".parse().unwrap(),
            responder_ip,
            responder_port: 15393,
        }
    }

    fn ips(list: &[&str]) -> BTreeSet<Ipv4Addr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn full_sync_replaces_set_and_rules_without_deleting_the_table() {
        let script = full_sync(
            &cfg(Some("10.0.0.4".parse().unwrap())),
            &ips(&["10.244.0.9", "10.244.0.10"]),
        );
        assert!(!script.contains("delete"), "{script}");
        let lines: Vec<&str> = script.lines().collect();
        let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
        // The set is filled before the dropping rules exist in the same transaction.
        assert!(at("flush set") < at("add element") && at("add element") < at("counter drop"));
        assert!(script.contains("add element ip podid_guard allowed { 10.244.0.9, 10.244.0.10 }"));
        assert!(script.contains(
            "ip daddr 169.254.169.254 tcp dport 80 ip saddr != @allowed counter dnat to 10.0.0.4:15393"
        ));
        assert!(script.contains("add rule ip podid_guard imds_filter ip daddr 169.254.169.254 ip saddr != @allowed counter drop"));
    }

    #[test]
    fn without_a_responder_address_blocked_tcp_is_redirected_and_an_empty_set_has_no_element_line()
    {
        let script = full_sync(&cfg(None), &BTreeSet::new());
        assert!(script.contains("counter redirect to :15393"), "{script}");
        assert!(!script.contains("add element"), "{script}");
    }

    #[test]
    fn delta_adds_then_removes_removed_elements_so_drift_cannot_fail_it() {
        let change = SetDelta::between(
            &ips(&["10.0.0.1", "10.0.0.2"]),
            &ips(&["10.0.0.2", "10.0.0.3"]),
        );
        assert_eq!(change.add, ips(&["10.0.0.3"]));
        assert_eq!(change.remove, ips(&["10.0.0.1"]));
        assert_eq!(
            delta(&cfg(None), &change),
            "add element ip podid_guard allowed { 10.0.0.3 }\n\
             add element ip podid_guard allowed { 10.0.0.1 }\n\
             delete element ip podid_guard allowed { 10.0.0.1 }\n"
        );
        let same = SetDelta::between(&ips(&["10.0.0.1"]), &ips(&["10.0.0.1"]));
        assert!(same.is_empty() && delta(&cfg(None), &same).is_empty());
    }
}
