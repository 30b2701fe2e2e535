//! Tier 3: isolation between tether networks on one node. Two routed (ptp) networks and a
//! gateway bridge network with `isolate: true`: each container reaches its own gateway (and,
//! within a network, its neighbours), the node reaches all of them, and nothing crosses from one
//! network to another. Without `isolate` the node routes between networks, as the reference does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use serde_json::{json, Value};
use tether_tests::config::{addr_of, result_addresses, with_prev, Family, Ptp};
use tether_tests::netns::Node;
use tether_tests::plugin::Plugin;
use tether_tests::{require_root, require_tool};

const IFNAME: &str = "eth0";

fn addr(result: &Value, v6: bool) -> String {
    result_addresses(result).into_iter().find(|a| a.contains(':') == v6).map(|a| addr_of(&a).to_string()).unwrap()
}

fn bridge_network(x: u8, data_dir: &str) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": format!("iso{x}"), "type": "tether", "mode": "bridge",
        "bridge": format!("tbr{x}"), "isDefaultGateway": true, "isolate": true,
        "ipam": {"type": "tether-ipam", "dataDir": data_dir,
                 "ranges": [[{"subnet": format!("198.18.{x}.0/24")}], [{"subnet": format!("fd7e:7e7e:{x:x}::/64")}]]},
    })
}

fn isolated(mut conf: Value) -> Value {
    conf["isolate"] = json!(true);
    conf
}

#[test]
fn networks_route_between_each_other_unless_both_are_isolated() {
    if !require_root() || !require_tool("ping") || !require_tool("nft") {
        return;
    }
    let node = Node::new("isoopt");
    let plugin = Plugin::tether(&node.ns);
    let dd = node.data_dir();
    let net_a = Ptp::new("1.1.0", "opt-a", 66, Family::V4, &dd).conf();
    let net_b = Ptp::new("1.1.0", "opt-b", 67, Family::V4, &dd).conf();
    let net_c = isolated(Ptp::new("1.1.0", "opt-c", 68, Family::V4, &dd).conf());
    let ctrs = [node.container("a"), node.container("b"), node.container("c")];
    let nets = [&net_a, &net_b, &net_c];
    let mut results: Vec<Value> =
        ctrs[..2].iter().zip(nets).map(|(c, n)| plugin.add(n, c, IFNAME).result().clone()).collect();
    assert!(!node.nft_text().contains("table inet tether {"), "no isolation state without an isolated network");
    results.push(plugin.add(&net_c, &ctrs[2], IFNAME).result().clone());
    assert!(ctrs[0].ping(&addr(&results[1], false)), "a -> b: neither is isolated, the node routes");
    assert!(ctrs[1].ping(&addr(&results[0], false)), "b -> a");
    // As netavark's isolate=true: an isolated network is cut off from other isolated networks only.
    assert!(ctrs[2].ping(&addr(&results[0], false)), "c (isolated) -> a (not isolated)");
    for ((c, n), r) in ctrs.iter().zip(nets).zip(&results) {
        plugin.check(&with_prev(n, r), c, IFNAME).assert_ok_silent();
        plugin.del(&with_prev(n, r), c, IFNAME).assert_ok_silent();
    }
}

#[test]
fn containers_of_different_networks_cannot_reach_each_other() {
    if !require_root() || !require_tool("ping") || !require_tool("nft") {
        return;
    }
    let node = Node::new("iso");
    let plugin = Plugin::tether(&node.ns);
    let dd = node.data_dir();
    let net_a = isolated(Ptp::new("1.1.0", "iso-a", 61, Family::Dual, &dd).conf());
    let net_b = isolated(Ptp::new("1.1.0", "iso-b", 62, Family::Dual, &dd).conf());
    let net_c = bridge_network(63, &dd.display().to_string());
    let attach = |conf: &Value, tag: &str| {
        let ctr = node.container(tag);
        let result = plugin.add(conf, &ctr, IFNAME).result().clone();
        (ctr, result, conf.clone())
    };
    let all =
        [attach(&net_a, "a1"), attach(&net_a, "a2"), attach(&net_b, "b1"), attach(&net_c, "c1"), attach(&net_c, "c2")];
    let net_of = |i: usize| all[i].2["name"].as_str().unwrap().to_string();

    for v6 in [false, true] {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        for (i, (from, result, _)) in all.iter().enumerate() {
            let gw =
                result["ips"].as_array().unwrap().iter().find(|ip| ip["address"].as_str().unwrap().contains(':') == v6);
            let gw = gw.and_then(|ip| ip["gateway"].as_str()).unwrap();
            assert!(from.ping(gw), "{fam}: {} -> its gateway {gw}", from.name());
            assert!(node.ping(&addr(result, v6)), "{fam}: node -> {}", from.name());
            for (j, (to, other, _)) in all.iter().enumerate() {
                if i == j {
                    continue;
                }
                let same = net_of(i) == net_of(j);
                let reached = from.ping(&addr(other, v6));
                assert_eq!(
                    reached,
                    same,
                    "{fam}: {} ({}) -> {} ({}): reached {reached}",
                    from.name(),
                    net_of(i),
                    to.name(),
                    net_of(j)
                );
            }
        }
    }
    let ruleset = node.nft_text();
    assert!(ruleset.contains("iifgroup . oifgroup != @same drop"), "{ruleset}");
    for (ctr, result, conf) in &all {
        plugin.del(&with_prev(conf, result), ctr, IFNAME).assert_ok_silent();
    }
}

#[test]
fn without_the_isolation_rule_the_same_node_would_route_between_networks() {
    // The control for the test above: the drop comes from the isolation state, not from routing.
    if !require_root() || !require_tool("ping") || !require_tool("nft") {
        return;
    }
    let node = Node::new("isoctl");
    let plugin = Plugin::tether(&node.ns);
    let dd = node.data_dir();
    let net_a = isolated(Ptp::new("1.1.0", "ctl-a", 64, Family::V4, &dd).conf());
    let net_b = isolated(Ptp::new("1.1.0", "ctl-b", 65, Family::V4, &dd).conf());
    let (a, b) = (node.container("a"), node.container("b"));
    let (ra, rb) = (plugin.add(&net_a, &a, IFNAME).result().clone(), plugin.add(&net_b, &b, IFNAME).result().clone());
    assert!(!a.ping(&addr(&rb, false)), "isolated");
    node.exec_ok(&["nft", "delete", "table", "inet", "tether"]);
    assert!(a.ping(&addr(&rb, false)), "with the isolation table gone, the node routes a -> b");
    // CHECK notices the missing isolation state.
    let out = plugin.check(&with_prev(&net_a, &ra), &a, IFNAME);
    assert!(out.assert_code(105).error_text().contains("isolation"), "{out}");
    plugin.del(&with_prev(&net_a, &ra), &a, IFNAME).assert_ok_silent();
    plugin.del(&with_prev(&net_b, &rb), &b, IFNAME).assert_ok_silent();
}
