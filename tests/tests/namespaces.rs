//! Tier 3: what tether does with a `CNI_NETNS` it must not use, and where it logs. Each failure
//! must leave the node exactly as it was: no link, no route, no reservation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use tether_tests::config::{Family, Ptp};
use tether_tests::netns::Node;
use tether_tests::plugin::{Invocation, Plugin};
use tether_tests::require_root;

/// A ptp network on a fresh node (subnet index `x`).
fn setup(tag: &str, x: u8) -> Option<(Node, Ptp)> {
    if !require_root() {
        return None;
    }
    let node = Node::new(tag);
    let ptp = Ptp::new("1.1.0", &format!("ns{x}"), x, Family::Dual, &node.data_dir());
    Some((node, ptp))
}

#[test]
fn the_plugins_own_namespace_is_refused() {
    let Some((node, ptp)) = setup("ownns", 60) else { return };
    let links_before = node.ns.link_names();
    // The plugin runs inside the node; CNI_NETNS names that very namespace.
    let out = Plugin::tether(&node.ns).invoke(&Invocation::attachment("ADD", &node.ns, "eth0"), &ptp.conf());
    out.assert_code(101);
    assert!(out.error_text().contains("own network namespace"), "{}", out.error_text());
    assert_eq!(node.ns.link_names(), links_before, "links changed");
    assert!(node.reservations().is_empty(), "reservation left: {:?}", node.reservations());
}

#[test]
fn a_missing_namespace_fails_add_but_not_del() {
    let Some((node, ptp)) = setup("nons", 61) else { return };
    let plugin = Plugin::tether(&node.ns);
    let gone = format!("/run/netns/{}-never-made", node.ns.name());
    let inv = |cmd: &str| Invocation {
        command: Some(cmd.to_string()),
        container_id: Some("c-missing".to_string()),
        netns: Some(gone.clone()),
        ifname: Some("eth0".to_string()),
        ..Invocation::default()
    };
    let out = plugin.invoke(&inv("ADD"), &ptp.conf());
    out.assert_code(101);
    assert!(out.error_text().contains(&gone), "the message names the path: {}", out.error_text());
    assert!(node.reservations().is_empty(), "reservation left: {:?}", node.reservations());
    plugin.invoke(&inv("DEL"), &ptp.conf()).assert_ok_silent();
}

#[test]
fn logs_go_to_the_configured_file_and_never_to_stdout() {
    let Some((node, ptp)) = setup("logs", 62) else { return };
    let log = node.dir.path().join("tether.log");
    let plugin = Plugin::tether(&node.ns).env("TETHER_LOG", "debug").env("TETHER_LOG_FILE", &log.display().to_string());
    let ctr = node.container("logs-c");
    let result = plugin.add(&ptp.conf(), &ctr, "eth0").result().clone();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("ADD"), "nothing logged to {}: {text:?}", log.display());
    // stdout held exactly the one result document (parsed by the harness), nothing else.
    assert_eq!(result["cniVersion"], "1.1.0");
    plugin.del(&tether_tests::config::with_prev(&ptp.conf(), &result), &ctr, "eth0").assert_ok_silent();
}
