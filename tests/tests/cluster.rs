//! A Kubernetes-style cluster in namespaces: three node namespaces on a shared fabric (a bridge in a namespace of
//! its own), each with its own pod range on tether and static routes to the other nodes' pod ranges via their
//! fabric addresses, and an "outside" network behind node 1. Each node's conflist is written by `tether-install`
//! from its settings, and the binaries run are the ones it installed, as on a real node.
//!
//! Checked, over IPv4 and IPv6, in ptp mode and in bridge mode: pods on different nodes reach each other with
//! their own source addresses (counted by source on the receiving side), a pod reaching the outside is
//! masqueraded (to its node's address), CHECK passes and notices a change of the exclusions, and after all DELs
//! the nodes hold nothing of the pods.
//!
//! Addresses: pod range of node i `198.18.<i>.0/24` and `fd7e:7e7e:<i>::/64` (the cluster `198.18.0.0/20` and
//! `fd7e:7e7e::/44`, the non-masquerade ranges), fabric `198.18.250.0/24` and `fd7e:7e7e:250::/64`, outside
//! `198.19.0.0/24` and `fd7e:7e7e:260::/64` (node 1 is `.1`, the outside host `.2`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use tether_tests::config::{addr_of, result_addresses, with_prev};
use tether_tests::netns::NodeState;
use tether_tests::{bins, cmd, require_root, require_tool, Netns, Node, Plugin, TempDir};

const CLUSTER: &str = "198.18.0.0/20,fd7e:7e7e::/44";
const NODES: u8 = 3;

fn fabric4(i: u8) -> String {
    format!("198.18.250.{i}")
}
fn fabric6(i: u8) -> String {
    format!("fd7e:7e7e:250::{i}")
}
fn pods4(i: u8) -> String {
    format!("198.18.{i}.0/24")
}
fn pods6(i: u8) -> String {
    format!("fd7e:7e7e:{i}::/64")
}

/// One node: its namespace and scratch dir, and what `tether-install` put there.
struct ClusterNode {
    node: Node,
    bin_dir: PathBuf,
    /// The conflist's only plugin, with `cniVersion` and `name` as libcni passes them.
    conf: Value,
}

impl ClusterNode {
    fn tether(&self) -> Plugin {
        Plugin::new(self.bin_dir.join("tether"), &self.node.ns).env("CNI_PATH", &self.bin_dir.display().to_string())
    }
}

/// Run `tether-install --once` for node `i` into `dir`; the conflist's plugin configuration.
fn install(i: u8, mode: &str, dir: &TempDir, data_dir: &std::path::Path, exclusions: &str) -> (PathBuf, Value) {
    let bin_dir = dir.path().join(format!("node{i}-bin"));
    let conf_dir = dir.path().join(format!("node{i}-net.d"));
    let mut c = std::process::Command::new(bins::ours("tether-install"));
    c.arg("--once").env_clear().envs([
        ("TETHER_OUTPUT", "conflist".to_string()),
        ("TETHER_POD_CIDRS", format!("{},{}", pods4(i), pods6(i))),
        ("TETHER_MODE", mode.to_string()),
        ("TETHER_NON_MASQUERADE_CIDRS", exclusions.to_string()),
        ("TETHER_NETWORK_NAME", "k8s".to_string()),
        ("TETHER_CNI_VERSION", "1.1.0".to_string()),
        ("TETHER_IPAM_DATA_DIR", data_dir.display().to_string()),
        ("TETHER_BIN_DIR", bin_dir.display().to_string()),
        ("TETHER_CONF_DIR", conf_dir.display().to_string()),
        ("TETHER_SOURCE_DIR", bins::bin_dir().display().to_string()),
    ]);
    cmd::run(c, Vec::new(), "", cmd::DEFAULT_TIMEOUT).assert_success();
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(conf_dir.join("10-tether.conflist")).unwrap()).unwrap();
    let mut conf = list["plugins"][0].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    (bin_dir, conf)
}

/// The fabric, the nodes, the outside host; removed on drop (namespaces first, then the dirs).
struct Cluster {
    nodes: Vec<ClusterNode>,
    outside: Netns,
    _fabric: Netns,
    dir: TempDir,
}

impl Cluster {
    fn new(mode: &str) -> Cluster {
        let dir = TempDir::new(&format!("cluster-{mode}"));
        let fabric = Netns::new("fabric");
        fabric.ip_ok(&["link", "add", "fab0", "type", "bridge"]);
        fabric.ip_ok(&["link", "set", "fab0", "up"]);
        let mut nodes = Vec::new();
        for i in 1..=NODES {
            let node = Node::new(&format!("k{i}"));
            let port = format!("fab{i}");
            fabric.ip_ok(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", node.ns.name()]);
            fabric.ip_ok(&["link", "set", &port, "master", "fab0", "up"]);
            node.ip_ok(&["addr", "add", &format!("{}/24", fabric4(i)), "dev", "eth0"]);
            node.ip_ok(&["addr", "add", &format!("{}/64", fabric6(i)), "dev", "eth0", "nodad"]);
            node.ip_ok(&["link", "set", "eth0", "up"]);
            for j in (1..=NODES).filter(|j| *j != i) {
                node.ip_ok(&["route", "add", &pods4(j), "via", &fabric4(j)]);
                node.ip_ok(&["-6", "route", "add", &pods6(j), "via", &fabric6(j)]);
            }
            if i != 1 {
                // Everything else leaves the cluster through node 1.
                node.ip_ok(&["route", "add", "default", "via", &fabric4(1)]);
                node.ip_ok(&["-6", "route", "add", "default", "via", &fabric6(1)]);
            }
            node.exec_ok(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
            let (bin_dir, conf) = install(i, mode, &dir, &node.data_dir(), CLUSTER);
            nodes.push(ClusterNode { node, bin_dir, conf });
        }
        let outside = Netns::new("outside");
        let n1 = &nodes[0].node;
        n1.ip_ok(&["link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", outside.name()]);
        n1.ip_ok(&["addr", "add", "198.19.0.1/24", "dev", "up0"]);
        n1.ip_ok(&["addr", "add", "fd7e:7e7e:260::1/64", "dev", "up0", "nodad"]);
        n1.ip_ok(&["link", "set", "up0", "up"]);
        outside.ip_ok(&["addr", "add", "198.19.0.2/24", "dev", "eth0"]);
        outside.ip_ok(&["addr", "add", "fd7e:7e7e:260::2/64", "dev", "eth0", "nodad"]);
        outside.ip_ok(&["link", "set", "eth0", "up"]);
        // The outside knows the nodes (their fabric), never the pods: a pod's packet comes back only if its node
        // masqueraded it.
        outside.ip_ok(&["route", "add", "198.18.250.0/24", "via", "198.19.0.1"]);
        outside.ip_ok(&["-6", "route", "add", "fd7e:7e7e:250::/64", "via", "fd7e:7e7e:260::1"]);
        assert!(outside.route_get("198.18.1.2").is_none(), "the outside must not route the pod ranges");
        Cluster { nodes, outside, _fabric: fabric, dir }
    }
}

/// Count ICMP echo requests arriving at `ns`: those from `src`, and all of them: a fresh `table inet probe` each time.
fn probe(ns: &Netns, src: &str) {
    let (proto, icmp) = if src.contains(':') { ("ip6", "icmpv6") } else { ("ip", "icmp") };
    let _ = ns.exec(&["nft", "delete", "table", "inet", "probe"]);
    let rules = format!(
        "table inet probe {{
            counter this_src {{}}
            counter any_src {{}}
            chain input {{
                type filter hook input priority 0; policy accept;
                {icmp} type echo-request counter name any_src
                {proto} saddr {src} {icmp} type echo-request counter name this_src
            }}
        }}"
    );
    ns.exec(&["nft", &rules]).assert_success();
}

/// (echo requests from the probed source, all echo requests) since [`probe`].
fn probed(ns: &Netns) -> (u64, u64) {
    let count = |name: &str| {
        let out = ns.exec_ok(&["nft", "-j", "list", "counter", "inet", "probe", name]);
        let doc: Value = serde_json::from_str(&out).unwrap();
        doc["nftables"].as_array().unwrap().iter().find_map(|o| o["counter"]["packets"].as_u64()).unwrap()
    };
    (count("this_src"), count("any_src"))
}

/// Ping `dst` from `from` (a few tries: the first IPv6 packet through a new path can be lost while a node end's
/// link-local address is still tentative) and assert that every request `at` saw came from `src`.
#[track_caller]
fn assert_arrives_from(from: &Netns, dst: &str, at: &Netns, src: &str) {
    probe(at, src);
    let mut run = from.ping_run(dst, None);
    for _ in 0..4 {
        if run.success() {
            break;
        }
        run = from.ping_run(dst, None);
    }
    assert!(run.success(), "{} cannot reach {dst}:\n{run}", from.name());
    let (this_src, any_src) = probed(at);
    assert!(any_src >= 1 && this_src == any_src, "{dst} saw {any_src} request(s), {this_src} of them from {src}");
}

/// The node's state, and its masquerade elements (all of them are pods').
fn state(n: &ClusterNode) -> (NodeState, BTreeSet<String>) {
    let rs = n.node.nft_ruleset();
    let elems = rs["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("set"))
        .filter(|s| s["name"] == "masq4" || s["name"] == "masq6")
        .flat_map(|s| s["elem"].as_array().cloned().unwrap_or_default())
        .map(|e| e.to_string())
        .collect();
    (n.node.state(), elems)
}

/// `after` holds nothing `before` lacked, except (in bridge mode) the bridge and its gateway addresses, which
/// are the network's, not a pod's, and stay by design.
#[track_caller]
fn assert_nothing_of_the_pods(before: &(NodeState, BTreeSet<String>), after: &(NodeState, BTreeSet<String>), i: u8) {
    let (b, a) = (&before.0, &after.0);
    let bridge_addrs = [format!("198.18.{i}.1/24"), format!("fd7e:7e7e:{i}::1/64")];
    let extra_links: Vec<_> = a.links.difference(&b.links).filter(|l| *l != "tether0").collect();
    let extra_addrs: Vec<_> = a.addrs.difference(&b.addrs).filter(|x| !bridge_addrs.contains(x)).collect();
    let extra_routes: Vec<_> = a.routes.difference(&b.routes).filter(|r| !r.contains("dev tether0")).collect();
    assert!(extra_links.is_empty(), "node {i} keeps links {extra_links:?}");
    assert!(extra_addrs.is_empty(), "node {i} keeps addresses {extra_addrs:?}");
    assert!(extra_routes.is_empty(), "node {i} keeps routes {extra_routes:?}");
    assert_eq!(a.reservations, b.reservations, "node {i} keeps reservations");
    assert!(after.1.is_empty(), "node {i} keeps masquerade elements {:?}", after.1);
}

fn cluster_test(mode: &str) {
    require_root!();
    if !require_tool("nft") || !require_tool("ping") {
        return;
    }
    let c = Cluster::new(mode);
    let before: Vec<_> = c.nodes.iter().map(state).collect();
    // One pod per node, ADDed with the conflist the installer wrote and the binary it installed.
    let mut pods: Vec<(Netns, Value)> = Vec::new();
    for (i, n) in c.nodes.iter().enumerate() {
        let pod = n.node.container(&format!("pod{}", i + 1));
        let result = n.tether().add(&n.conf, &pod, "eth0").result().clone();
        pods.push((pod, result));
    }
    let addrs = |p: usize| -> (String, String) {
        let all = result_addresses(&pods[p].1);
        let v4 = all.iter().find(|a| !a.contains(':')).map(|a| addr_of(a).to_string()).unwrap();
        let v6 = all.iter().find(|a| a.contains(':')).map(|a| addr_of(a).to_string()).unwrap();
        (v4, v6)
    };
    for (p, want) in [(0, "198.18.1."), (1, "198.18.2."), (2, "198.18.3.")] {
        assert!(addrs(p).0.starts_with(want), "pod on node {} got {:?}", p + 1, addrs(p));
    }

    // Pod to pod across nodes, both directions and families: no NAT, the receiver sees the sender's address.
    for (from, to) in [(0, 1), (1, 0), (1, 2), (2, 0)] {
        let ((f4, f6), (t4, t6)) = (addrs(from), addrs(to));
        assert_arrives_from(&pods[from].0, &t4, &pods[to].0, &f4);
        assert_arrives_from(&pods[from].0, &t6, &pods[to].0, &f6);
    }
    // To the outside: masqueraded, to node 1's outside address from node 1, to a node's fabric address from
    // the others (node 1 forwards that as it is).
    assert_arrives_from(&pods[0].0, "198.19.0.2", &c.outside, "198.19.0.1");
    assert_arrives_from(&pods[0].0, "fd7e:7e7e:260::2", &c.outside, "fd7e:7e7e:260::1");
    assert_arrives_from(&pods[1].0, "198.19.0.2", &c.outside, &fabric4(2));
    assert_arrives_from(&pods[2].0, "fd7e:7e7e:260::2", &c.outside, &fabric6(3));

    // CHECK passes for every pod, exclusions included.
    for (n, (pod, result)) in c.nodes.iter().zip(&pods) {
        n.tether().check(&with_prev(&n.conf, result), pod, "eth0").assert_ok_silent();
    }

    // Node 1's network reconfigured without exclusions (a second pod ADDed from a newer conflist): the newest list
    // applies to the whole network, so pod 1's traffic to pod 2 is masqueraded now, and CHECK of pod 1 against
    // its old configuration names the drift.
    let n1 = &c.nodes[0];
    let (_, plain) = install(1, mode, &c.dir, &n1.node.data_dir(), "");
    assert!(plain.get("nonMasqueradeCIDRs").is_none());
    let late = n1.node.container("pod1b");
    let late_result = n1.tether().add(&plain, &late, "eth0").result().clone();
    assert_arrives_from(&pods[0].0, &addrs(1).0, &pods[1].0, &fabric4(1));
    let drift = n1.tether().check(&with_prev(&n1.conf, &pods[0].1), &pods[0].0, "eth0");
    drift.assert_code(105);
    assert!(drift.error_text().contains("nonMasqueradeCIDRs"), "{drift}");
    n1.tether().del(&with_prev(&plain, &late_result), &late, "eth0").assert_ok_silent();

    // After every DEL the nodes hold nothing of the pods.
    for (n, (pod, result)) in c.nodes.iter().zip(&pods) {
        n.tether().del(&with_prev(&n.conf, result), pod, "eth0").assert_ok_silent();
    }
    for (i, n) in c.nodes.iter().enumerate() {
        assert_nothing_of_the_pods(&before[i], &state(n), i as u8 + 1);
    }
}

#[test]
fn cluster_ptp() {
    cluster_test("ptp");
}

#[test]
fn cluster_bridge() {
    cluster_test("bridge");
}

#[test]
fn the_conflists_carry_the_exclusions() {
    // No root needed: what the installer writes for a cluster node.
    let dir = TempDir::new("cluster-conf");
    let (_, conf) = install(2, "ptp", &dir, &dir.path().join("ipam"), CLUSTER);
    assert_eq!(conf["nonMasqueradeCIDRs"], json!(["198.18.0.0/20", "fd7e:7e7e::/44"]));
    assert_eq!(conf["ipMasq"], true);
    assert_eq!(conf["ipam"]["ranges"], json!([[{"subnet": pods4(2)}], [{"subnet": pods6(2)}]]));
}
