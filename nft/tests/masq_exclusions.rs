//! Root tests of the masquerade exclusions (`nomasq4`/`nomasq6`, the plugin's `nonMasqueradeCIDRs`), each in its
//! own throwaway network namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ipnet::IpNet;
use nft::MasqEntry;

fn entry(addr: &str, subnet: &str) -> MasqEntry {
    MasqEntry { addr: addr.parse().unwrap(), subnet: subnet.parse().unwrap() }
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn each_add_makes_the_exclusions_its_list() {
    if !can_run("each_add_makes_the_exclusions_its_list") {
        return;
    }
    let ns = Netns::new("excl");
    let dual = [entry("198.18.1.2", "198.18.1.0/24"), entry("fd7e:7e7e:1::2", "fd7e:7e7e:1::/64")];
    let first = nets(&["198.19.3.0/24", "198.18.0.0/16", "198.19.2.0/24", "198.18.5.0/24", "fd7e:7e7e::/32"]);
    ns.run(|| session().masq_add("net1", "c1", "eth0", &dual, &first).unwrap());
    // merged: the /24 inside the /16 disappears, the two adjacent /24s become a /23
    let want = nets(&["198.18.0.0/16", "198.19.2.0/23", "fd7e:7e7e::/32"]);
    assert_eq!(ns.run(|| session().masq_excluded("net1").unwrap()), want);
    let text = ns.ruleset_text();
    for line in ["ip daddr @nomasq4 return", "ip6 daddr @nomasq6 return", "198.18.0.0/16", "fd7e:7e7e::/32"] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // The same list again, from another attachment: nothing changes, nothing is duplicated.
    ns.run(|| session().masq_add("net1", "c2", "eth0", &[entry("198.18.1.3", "198.18.1.0/24")], &first).unwrap());
    assert_eq!(ns.run(|| session().masq_excluded("net1").unwrap()), want);
    assert_eq!(objects(&ns.ruleset(), "rule").len(), 8);

    // A newer configuration of the network: its list replaces the old one (here: v6 exclusion gone, v4 wider).
    let newer = nets(&["198.18.0.0/15"]);
    ns.run(|| session().masq_add("net1", "c3", "eth0", &[entry("198.18.1.4", "198.18.1.0/24")], &newer).unwrap());
    assert_eq!(ns.run(|| session().masq_excluded("net1").unwrap()), newer);
    // Another network is untouched by all of this.
    ns.run(|| session().masq_add("net2", "c1", "eth0", &[entry("198.18.2.2", "198.18.2.0/24")], &[]).unwrap());
    assert_eq!(ns.run(|| session().masq_excluded("net2").unwrap()), vec![]);
    assert_eq!(ns.run(|| session().masq_excluded("net1").unwrap()), newer);

    // DEL is per attachment: the network's exclusions stay for the containers left.
    ns.run(|| session().masq_del("net1", "c3", "eth0").unwrap());
    assert_eq!(ns.run(|| session().masq_excluded("net1").unwrap()), newer);
    // An empty list empties them.
    ns.run(|| session().masq_add("net1", "c1", "eth0", &dual, &[]).unwrap());
    assert_eq!(ns.run(|| session().masq_excluded("net1").unwrap()), vec![]);
    // GC of every attachment takes the table, exclusions and all.
    ns.run(|| session().masq_add("net1", "c1", "eth0", &dual, &first).unwrap());
    ns.run(|| session().masq_gc("net1", &[]).unwrap());
    assert_eq!(ns.run(|| session().masq_excluded("net1").unwrap()), vec![]);
    assert!(!ns.ruleset_text().contains("tether-net1"), "{}", ns.ruleset_text());
}

#[test]
fn concurrent_adds_with_different_lists_settle_on_one_of_them() {
    if !can_run("concurrent_adds_with_different_lists_settle_on_one_of_them") {
        return;
    }
    let ns = Netns::new("exclrace");
    let lists = [nets(&["198.18.0.0/16", "fd7e:7e7e::/48"]), nets(&["198.19.0.0/16"]), nets(&["198.18.128.0/17"])];
    std::thread::scope(|s| {
        for i in 0..12u8 {
            let (ns, list) = (&ns, &lists[usize::from(i) % 3]);
            s.spawn(move || {
                let e = entry(&format!("198.18.1.{}", 10 + i), "198.18.1.0/24");
                ns.run(|| session().masq_add("net1", &format!("c{i}"), "eth0", &[e], list).unwrap());
            });
        }
    });
    let got = ns.run(|| session().masq_excluded("net1").unwrap());
    assert!(lists.contains(&got), "exclusions {got:?} are none of the lists");
}

/// A named counter `name` in `table inet probe` of `ns`, and its packet count.
fn counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.exec(&["nft", "-j", "list", "counter", "inet", "probe", name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    objects(&doc, "counter")[0]["packets"].as_u64().unwrap()
}

/// Node with a container (198.18.1.2/24, fd7e:7e7e:1::2/64) and a peer network (198.18.200.0/24,
/// fd7e:7e7e:200::/64) that routes the container's subnet back through the node, as another node of a cluster
/// does: the peer counts echo requests by source address, so it sees whether the node masqueraded them.
#[test]
fn excluded_destinations_see_the_container_address() {
    if !can_run("excluded_destinations_see_the_container_address") {
        return;
    }
    let node = Netns::new("node");
    let ctr = Netns::new("ctr");
    let peer = Netns::new("peer");
    node.ip(&["link", "add", "hc", "type", "veth", "peer", "name", "eth0", "netns", &ctr.name]);
    node.ip(&["link", "add", "hp", "type", "veth", "peer", "name", "eth0", "netns", &peer.name]);
    for (addr, dev) in
        [("198.18.1.1/24", "hc"), ("fd7e:7e7e:1::1/64", "hc"), ("198.18.200.1/24", "hp"), ("fd7e:7e7e:200::1/64", "hp")]
    {
        node.ip(&["addr", "add", addr, "dev", dev, "nodad"]);
    }
    node.ip(&["link", "set", "hc", "up"]);
    node.ip(&["link", "set", "hp", "up"]);
    node.sysctl("net.ipv4.ip_forward", "1");
    node.sysctl("net.ipv6.conf.all.forwarding", "1");
    for addr in ["198.18.1.2/24", "fd7e:7e7e:1::2/64"] {
        ctr.ip(&["addr", "add", addr, "dev", "eth0", "nodad"]);
    }
    ctr.ip(&["link", "set", "eth0", "up"]);
    ctr.ip(&["route", "add", "default", "via", "198.18.1.1"]);
    ctr.ip(&["-6", "route", "add", "default", "via", "fd7e:7e7e:1::1"]);
    for addr in ["198.18.200.2/24", "fd7e:7e7e:200::2/64"] {
        peer.ip(&["addr", "add", addr, "dev", "eth0", "nodad"]);
    }
    peer.ip(&["link", "set", "eth0", "up"]);
    peer.ip(&["route", "add", "198.18.1.0/24", "via", "198.18.200.1"]);
    peer.ip(&["-6", "route", "add", "fd7e:7e7e:1::/64", "via", "fd7e:7e7e:200::1"]);
    let probe = "table inet probe {
        counter ctr4 {}
        counter node4 {}
        counter ctr6 {}
        counter node6 {}
        chain input {
            type filter hook input priority 0; policy accept;
            icmp type echo-request ip saddr 198.18.1.2 counter name ctr4
            icmp type echo-request ip saddr 198.18.200.1 counter name node4
            icmpv6 type echo-request ip6 saddr fd7e:7e7e:1::2 counter name ctr6
            icmpv6 type echo-request ip6 saddr fd7e:7e7e:200::1 counter name node6
        }
    }";
    let out = peer.exec(&["nft", probe]);
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
    let dual = [entry("198.18.1.2", "198.18.1.0/24"), entry("fd7e:7e7e:1::2", "fd7e:7e7e:1::/64")];
    let counts = || [counter(&peer, "ctr4"), counter(&peer, "node4"), counter(&peer, "ctr6"), counter(&peer, "node6")];

    // Masquerade without exclusions: the peer sees the node's addresses.
    node.run(|| session().masq_add("net1", "c1", "eth0", &dual, &[]).unwrap());
    assert!(ctr.ping("198.18.200.2") && ctr.ping("fd7e:7e7e:200::2"));
    assert_eq!(counts(), [0, 1, 0, 1], "masqueraded: from the node");
    // The peer's ranges excluded (a repeated ADD with the new list): it sees the container's own addresses.
    node.run(|| {
        session().masq_add("net1", "c1", "eth0", &dual, &nets(&["198.18.200.0/24", "fd7e:7e7e:200::/64"])).unwrap()
    });
    assert!(ctr.ping("198.18.200.2") && ctr.ping("fd7e:7e7e:200::2"));
    assert_eq!(counts(), [1, 1, 1, 1], "excluded: from the container");
    // Only IPv4 excluded: IPv6 is masqueraded again.
    node.run(|| session().masq_add("net1", "c1", "eth0", &dual, &nets(&["198.18.0.0/15"])).unwrap());
    assert!(ctr.ping("198.18.200.2") && ctr.ping("fd7e:7e7e:200::2"));
    assert_eq!(counts(), [2, 1, 1, 2]);
}

/// A table of the layout before the exclusions (six rules, four sets), as a node upgraded with live containers has.
const OLD_LAYOUT: &str = "table inet tether-net1 {
    set masq4 { type ipv4_addr; }
    set masq6 { type ipv6_addr; }
    set nets4 { type ipv4_addr; flags interval; }
    set nets6 { type ipv6_addr; flags interval; }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip daddr @nets4 return
        ip daddr 224.0.0.0/4 return
        ip saddr @masq4 masquerade
        ip6 daddr @nets6 return
        ip6 daddr ff00::/8 return
        ip6 saddr @masq6 masquerade
    }
}";

#[test]
fn a_table_of_the_old_layout_gains_the_exclusions_once() {
    if !can_run("a_table_of_the_old_layout_gains_the_exclusions_once") {
        return;
    }
    let ns = Netns::new("upgrade");
    let out = ns.exec(&["nft", OLD_LAYOUT]);
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
    // Without exclusions nothing needs the new sets: the old table keeps working as it is.
    ns.run(|| session().masq_add("net1", "old", "eth0", &[entry("198.18.1.2", "198.18.1.0/24")], &[]).unwrap());
    assert_eq!(objects(&ns.ruleset(), "rule").len(), 6);
    // With exclusions, from several ADDs at once: the sets and their two rules are added exactly once.
    let list = nets(&["198.18.0.0/16", "fd7e:7e7e::/44"]);
    std::thread::scope(|s| {
        for i in 0..4u8 {
            let (ns, list) = (&ns, &list);
            s.spawn(move || {
                let e = entry(&format!("198.18.1.{}", 10 + i), "198.18.1.0/24");
                ns.run(|| session().masq_add("net1", &format!("c{i}"), "eth0", &[e], list).unwrap());
            });
        }
    });
    assert_eq!(ns.run(|| session().masq_excluded("net1").unwrap()), list);
    let rs = ns.ruleset();
    assert_eq!(objects(&rs, "rule").len(), 8, "{}", ns.ruleset_text());
    assert_eq!(objects(&rs, "set").len(), 6);
    let text = ns.ruleset_text();
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("missing {needle:?} in\n{text}"));
    assert!(at("ip daddr @nomasq4 return") < at("ip saddr @masq4 masquerade"), "{text}");
    assert!(at("ip6 daddr @nomasq6 return") < at("ip6 saddr @masq6 masquerade"), "{text}");
}
