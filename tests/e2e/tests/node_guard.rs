//! podid-node-guard on a node with three pods (injected, not injected, exception): who reaches IMDS, changes taking effect, a restart without a window, and cleanup (root only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use podid_e2e::bins::{self, Bins};
use podid_e2e::http::{RawOutcome, RawRequest};
use podid_e2e::node::{GuardNode, PodClient, injected_pod, plain_pod, pod_ip};
use podid_e2e::pod::{APP_UID, imds};
use podid_e2e::proc::root_or_skip;
use podid_e2e::world::C;
use serde_json::{Value, json};

/// The proxy's uid: in an injected pod, the one that talks to the node's IMDS.
const PROXY_UID: u32 = 1501;
const INJECTED: usize = 0;
const PLAIN: usize = 1;
const EXCEPTION: usize = 2;

fn bins() -> &'static Bins {
    bins::get(env!("CARGO_BIN_EXE_podid-e2e-http")).unwrap_or_else(|e| panic!("{e}"))
}

/// A token request for C, which the VM holds: whoever reaches IMDS gets it.
fn token() -> RawRequest {
    RawRequest::imds(format!(
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id={}",
        C.client_id
    ))
}

fn pods(node: &GuardNode, injected: &[(&str, usize)], plain: &[(&str, usize)]) -> Vec<Value> {
    let mut list: Vec<Value> = injected
        .iter()
        .map(|(name, i)| injected_pod(node.bins, node.dir(), name, &pod_ip(*i)).unwrap())
        .collect();
    list.extend(
        plain
            .iter()
            .map(|(name, i)| plain_pod(name, &pod_ip(*i), json!({}))),
    );
    list.push(plain_pod(
        "batch",
        &pod_ip(EXCEPTION),
        json!({"app": "legacy-batch"}),
    ));
    // A host-network pod on the node's address: outside the guard's reach, and ignored.
    let mut host = plain_pod("host", "10.244.0.1", json!({}));
    host["spec"]["hostNetwork"] = json!(true);
    list.push(host);
    list
}

fn outcome(node: &GuardNode, pod: usize, uid: u32) -> RawOutcome {
    node.raw(pod, uid, imds(), &[token()]).unwrap().remove(0)
}

fn assert_blocked(got: &RawOutcome, pod: &str) {
    assert_eq!(got.status(), Some(403), "{got:?}");
    assert!(
        got.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{got:?}"
    );
    let body = got.json();
    assert_eq!(body["error"], "forbidden", "{body}");
    let text = body["error_description"].as_str().unwrap_or_default();
    assert!(
        text.contains("blocked by podid-node-guard") && text.contains(pod),
        "{body}"
    );
}

fn start(tag: &str) -> GuardNode {
    let mut node = GuardNode::start(tag, bins(), 3).unwrap_or_else(|e| panic!("{e}"));
    let list = pods(&node, &[("web", INJECTED)], &[("plain", PLAIN)]);
    node.write_pods(&list).unwrap();
    node.start_guard(&["--exception=app=legacy-batch"])
        .unwrap_or_else(|e| panic!("{e}"));
    node
}

#[test]
fn only_injected_and_exception_pods_reach_imds_and_changes_apply() {
    if !root_or_skip("only_injected_and_exception_pods_reach_imds_and_changes_apply") {
        return;
    }
    let mut node = start("reach");
    assert_eq!(
        outcome(&node, INJECTED, PROXY_UID).status(),
        Some(200),
        "{}",
        node.guard_log()
    );
    assert_eq!(outcome(&node, EXCEPTION, APP_UID).status(), Some(200));
    for uid in [APP_UID, 0, PROXY_UID] {
        assert_blocked(
            &outcome(&node, PLAIN, uid),
            "e2e/plain is not injected by podid",
        );
    }
    // Anything but TCP 80 from a blocked pod is dropped; an allowed pod's is refused by the node as usual.
    let https = "169.254.169.254:443".parse().unwrap();
    assert!(!node.tcp_answered(PLAIN, https).unwrap(), "not dropped");
    assert!(
        node.tcp_answered(INJECTED, https).unwrap(),
        "allowed pod dropped"
    );
    let metrics = node.metrics().unwrap();
    assert!(
        metrics.contains("podid_node_guard_blocked_total{reason=\"not_injected\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("podid_node_guard_events_total{result=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("podid_node_guard_events_total{result=\"suppressed\"} 2"),
        "{metrics}"
    );
    assert!(
        node.guard_log().contains("IMDSBlocked"),
        "{}",
        node.guard_log()
    );

    // The plain pod becomes injected (its replacement on the same IP), the injected one is deleted.
    let list = pods(&node, &[("plain-injected", PLAIN)], &[]);
    node.write_pods(&list).unwrap();
    let took = node
        .wait(Duration::from_secs(5), "the plain pod to be allowed", |n| {
            Ok(outcome(n, PLAIN, PROXY_UID).status() == Some(200))
        })
        .unwrap();
    eprintln!("update took effect within {took:?}");
    let gone = outcome(&node, INJECTED, PROXY_UID);
    assert_blocked(&gone, &pod_ip(INJECTED));
    // A pods file that does not parse is refused and changes nothing.
    std::fs::write(node.pods_file(), "[{\"metadata\": ").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(outcome(&node, PLAIN, PROXY_UID).status(), Some(200));
    assert!(
        node.metrics()
            .unwrap()
            .contains("podid_node_guard_input_errors_total 1")
    );
}

/// Sends token requests from `client` in batches until `stop`, bounded to 100 batches.
fn hammer(
    client: PodClient,
    uid: u32,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<RawOutcome>> {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let batch = vec![token(); 5];
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen.extend(client.raw(uid, imds(), &batch).unwrap());
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        seen
    })
}

#[test]
fn a_restart_opens_no_window_and_cleanup_removes_the_table() {
    if !root_or_skip("a_restart_opens_no_window_and_cleanup_removes_the_table") {
        return;
    }
    let mut node = start("restart");
    let stop = Arc::new(AtomicBool::new(false));
    let blocked = hammer(node.client(PLAIN), APP_UID, &stop);
    let allowed = hammer(node.client(INJECTED), PROXY_UID, &stop);
    std::thread::sleep(Duration::from_millis(300));
    node.stop_guard().unwrap();
    // Stopped (not uninstalled): the rules stay and keep protecting while no guard runs.
    let table = node.nft(&["list", "table", "ip", "podid_guard"]).unwrap();
    assert!(table.contains(&pod_ip(INJECTED)), "{table}");
    std::thread::sleep(Duration::from_millis(500));
    node.start_guard(&["--exception=app=legacy-batch"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (blocked, allowed) = (blocked.join().unwrap(), allowed.join().unwrap());
    let refused = blocked
        .iter()
        .filter(|o| **o == RawOutcome::Refused)
        .count();
    eprintln!(
        "during the restart: {} requests from the blocked pod ({refused} refused while no responder ran, \
         none reached IMDS), {} from the allowed one (all 200)",
        blocked.len(),
        allowed.len()
    );
    assert!(
        blocked.len() >= 10 && allowed.len() >= 10,
        "too few requests to show anything"
    );
    assert!(
        blocked.iter().all(|o| o.status() != Some(200)),
        "a blocked pod reached IMDS: {blocked:?}"
    );
    assert!(
        blocked.iter().any(|o| o.status() == Some(403)),
        "{blocked:?}"
    );
    assert!(
        allowed.iter().all(|o| o.status() == Some(200)),
        "an allowed pod was refused: {allowed:?}"
    );

    // Uninstall: stop the guard, then remove the table (twice: it is idempotent).
    node.stop_guard().unwrap();
    for _ in 0..2 {
        let out = node.guard_command(&["cleanup"]).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("removed nftables table ip podid_guard")
        );
    }
    assert!(
        !node
            .nft(&["list", "tables"])
            .unwrap()
            .contains("podid_guard")
    );
    // Nothing of the guard is left: the node's IMDS is reachable from every pod again.
    assert_eq!(outcome(&node, PLAIN, APP_UID).status(), Some(200));
}
