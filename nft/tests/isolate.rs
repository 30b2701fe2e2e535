//! Root tests of the isolation between networks, each in its own throwaway network namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use nft::isolation_group;
use serde_json::Value;

fn elements(rs: &Value) -> Vec<String> {
    let Some(s) = set(rs, "tether", "same") else { return vec![] };
    let mut out: Vec<String> = s["elem"]
        .as_array()
        .map(|a| a.iter().map(|e| e["elem"]["comment"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn add_is_idempotent_and_concurrent_adds_make_one_table() {
    if !can_run("add_is_idempotent_and_concurrent_adds_make_one_table") {
        return;
    }
    let ns = Netns::new("iso-add");
    assert!(!ns.run(|| session().isolate_check("net1")).unwrap(), "nothing there yet");
    std::thread::scope(|s| {
        for i in 0..12u8 {
            let ns = &ns;
            s.spawn(move || ns.run(|| session().isolate_add(&format!("net{}", i % 3)).unwrap()));
        }
    });
    let rs = ns.ruleset();
    let tables: Vec<_> = objects(&rs, "table").iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(tables, ["tether"]);
    assert_eq!(objects(&rs, "chain").len(), 1);
    assert_eq!(objects(&rs, "rule").len(), 1);
    assert_eq!(elements(&rs), ["net0", "net1", "net2"]);
    assert_eq!(ns.run(|| session().isolate_add("net1")).unwrap(), isolation_group("net1").unwrap());
    assert!(ns.run(|| session().isolate_check("net1")).unwrap());
    assert!(!ns.run(|| session().isolate_check("net3")).unwrap());
    let text = ns.ruleset_text();
    assert!(text.contains("hook forward priority filter"), "{text}");
    assert!(text.contains("iifgroup . oifgroup != @same drop"), "{text}");
    assert!(text.contains("type devgroup . devgroup"), "{text}");
}

/// A node routing between three containers: a1 and a2 on network "a", b1 on network "b", each behind its own
/// veth whose node end carries its network's group, plus an untagged uplink to "outside".
struct Node {
    node: Netns,
    a1: Netns,
    a2: Netns,
    b1: Netns,
    outside: Netns,
}

impl Node {
    fn new(tag: &str) -> Node {
        let n = Node {
            node: Netns::new(&format!("{tag}n")),
            a1: Netns::new(&format!("{tag}a1")),
            a2: Netns::new(&format!("{tag}a2")),
            b1: Netns::new(&format!("{tag}b1")),
            outside: Netns::new(&format!("{tag}o")),
        };
        n.node.sysctl("net.ipv4.ip_forward", "1");
        let ga = isolation_group("a").unwrap().to_string();
        let gb = isolation_group("b").unwrap().to_string();
        let legs = [
            ("va1", &n.a1, "198.18.1", ga.as_str()),
            ("va2", &n.a2, "198.18.2", ga.as_str()),
            ("vb1", &n.b1, "198.18.3", gb.as_str()),
            ("up0", &n.outside, "198.18.4", "0"),
        ];
        for (port, ctr, net, group) in legs {
            n.node
                .ip(&["link", "add", port, "group", group, "type", "veth", "peer", "name", "eth0", "netns", &ctr.name]);
            n.node.ip(&["addr", "add", &format!("{net}.1/24"), "dev", port]);
            n.node.ip(&["link", "set", port, "up"]);
            ctr.ip(&["addr", "add", &format!("{net}.2/24"), "dev", "eth0"]);
            ctr.ip(&["link", "set", "eth0", "up"]);
            ctr.ip(&["route", "add", "default", "via", &format!("{net}.1")]);
        }
        n
    }
}

#[test]
fn forwarding_between_networks_is_dropped_and_nothing_else() {
    if !can_run("forwarding_between_networks_is_dropped_and_nothing_else") {
        return;
    }
    let n = Node::new("iso-fw");
    // Before: everything reaches everything.
    assert!(n.a1.ping("198.18.3.2"), "a1 -> b1 before isolation");
    n.node.run(|| {
        session().isolate_add("a").unwrap();
        session().isolate_add("b").unwrap();
    });
    assert!(!n.a1.ping("198.18.3.2"), "a1 -> b1 must be dropped");
    assert!(!n.b1.ping("198.18.1.2"), "b1 -> a1 must be dropped");
    assert!(n.a1.ping("198.18.2.2"), "a1 -> a2: same network");
    assert!(n.a1.ping("198.18.1.1"), "a1 -> its gateway on the node");
    assert!(n.b1.ping("198.18.3.1"), "b1 -> its gateway on the node");
    assert!(n.a1.ping("198.18.4.2") && n.b1.ping("198.18.4.2"), "containers -> outside (untagged)");
    assert!(n.outside.ping("198.18.1.2") && n.outside.ping("198.18.3.2"), "outside -> containers");
    assert!(n.node.ping("198.18.1.2") && n.node.ping("198.18.3.2"), "node -> containers");
    // A network whose element is missing fails closed, even towards itself.
    let gc = isolation_group("c").unwrap().to_string();
    n.node.ip(&["link", "set", "va1", "group", &gc]);
    n.node.ip(&["link", "set", "va2", "group", &gc]);
    assert!(!n.a1.ping("198.18.2.2"), "a network without its element reaches nothing forwarded, not even itself");
    assert!(n.a1.ping("198.18.4.2"), "... but still the outside");
}

#[test]
fn a_colliding_group_is_refused_not_shared() {
    if !can_run("a_colliding_group_is_refused_not_shared") {
        return;
    }
    // Two names with one 24-bit group: searched, not hard-coded (about 2^12 names on average).
    let mut seen = std::collections::HashMap::new();
    let (first, second) = (0..1_000_000)
        .map(|i| format!("net-{i}"))
        .find_map(|name| seen.insert(isolation_group(&name).unwrap(), name.clone()).map(|other| (other, name)))
        .expect("a collision among a million names");
    let ns = Netns::new("iso-col");
    ns.run(|| session().isolate_add(&first)).unwrap();
    let err = ns.run(|| session().isolate_add(&second)).unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(err.to_string().contains(&first) && err.to_string().contains(&second), "names both: {err}");
    assert_eq!(elements(&ns.ruleset()), std::slice::from_ref(&first), "the first network keeps its element, alone");
    assert!(ns.run(|| session().isolate_add(&first)).is_ok(), "the holder itself is fine");
}
