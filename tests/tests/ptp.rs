//! Tier 3: `tether` in ptp mode, end to end, asserting SPEC behaviour (not internals). Every test
//! makes its own node and container namespaces, runs the binaries inside the node exactly as a
//! runtime does, and uses addresses from 198.18.0.0/15 and fd7e:7e7e::/32 only.
//!
//! A few flows also run against the reference `ptp` + `host-local` from /usr/lib/cni
//! (`reference_*` tests): they show the assertions themselves are right, independent of tether.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tether_tests::config::{
    addr_of, has_check, has_ip_version, result_addresses, with_prev, with_valid_attachments, Family, Ipam, Ptp,
};
use tether_tests::netns::{Netns, Node};
use tether_tests::plugin::{Outcome, Plugin};
use tether_tests::wait::eventually;
use tether_tests::{require_root, require_tool, version_tests};

const IFNAME: &str = "eth0";

/// Which implementation of "ptp" a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impl {
    /// `tether` with `mode: ptp`.
    Tether,
    /// The reference `/usr/lib/cni/ptp` (an oracle for the assertions).
    Reference,
}

/// A node with one ptp network on it.
struct Net {
    node: Node,
    plugin: Plugin,
    ptp: Ptp,
    imp: Impl,
}

impl Net {
    /// A fresh node and a ptp network (subnet index `x`), or `None` when root tests must skip.
    #[track_caller]
    fn new(tag: &str, imp: Impl, version: &str, fam: Family, x: u8) -> Option<Net> {
        if !require_root() || !require_tool("ping") {
            return None;
        }
        let node = Node::new(tag);
        let plugin = match imp {
            Impl::Tether => Plugin::tether(&node.ns),
            Impl::Reference => {
                if tether_tests::bins::reference("ptp").is_none() {
                    if tether_tests::ci_required() {
                        panic!("/usr/lib/cni/ptp is missing (containernetworking-plugins); CI is set");
                    }
                    eprintln!("SKIPPED: reference ptp not installed");
                    return None;
                }
                Plugin::reference("ptp", &node.ns)
            }
        };
        let mut ptp = Ptp::new(version, &format!("tt{x}"), x, fam, &node.data_dir());
        if imp == Impl::Reference {
            ptp = ptp.ipam(Ipam::HostLocal);
        }
        Some(Net { node, plugin, ptp, imp })
    }

    fn with(mut self, f: impl FnOnce(Ptp) -> Ptp) -> Net {
        self.ptp = f(self.ptp);
        self
    }

    fn conf(&self) -> Value {
        match self.imp {
            Impl::Tether => self.ptp.conf(),
            Impl::Reference => self.ptp.reference_conf(),
        }
    }

    fn add(&self, ctr: &Netns) -> Outcome {
        self.plugin.add(&self.conf(), ctr, IFNAME)
    }

    /// ADD that must succeed; returns the result.
    #[track_caller]
    fn add_ok(&self, ctr: &Netns) -> Value {
        self.add(ctr).result().clone()
    }

    fn del(&self, ctr: &Netns, prev: Option<&Value>) -> Outcome {
        let conf = prev.map(|p| with_prev(&self.conf(), p)).unwrap_or_else(|| self.conf());
        self.plugin.del(&conf, ctr, IFNAME)
    }

    fn check(&self, ctr: &Netns, prev: &Value) -> Outcome {
        self.plugin.check(&with_prev(&self.conf(), prev), ctr, IFNAME)
    }
}

/// Every string value anywhere in a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Does any object in the document have key `key`?
fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Array(a) => a.iter().any(|x| has_key(x, key)),
        Value::Object(o) => o.contains_key(key) || o.values().any(|x| has_key(x, key)),
        _ => false,
    }
}

/// Does the node's nftables ruleset mention `addr` (as an element, a match or a prefix)?
fn nft_mentions(node: &Node, addr: &str) -> bool {
    let mut all = Vec::new();
    strings(&node.nft_ruleset(), &mut all);
    all.iter().any(|s| s == addr || s.starts_with(&format!("{addr}/")))
}

/// A ping from `from` to `addr`, retried for up to 5 s: the reference ptp leaves the host-side
/// IPv6 gateway address tentative (DAD, about 1-2 s), and on a loaded machine one ping of 1 s
/// can be lost. That tether waits for no DAD is asserted by [`assert_no_tentative_address`], not
/// by timing.
fn ping(from: &Netns, addr: &str) -> tether_tests::cmd::Run {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let run = from.ping_run(addr, None);
        if run.success() || Instant::now() > deadline {
            return run;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Right after ADD, no global address of the attachment is tentative (tether adds them with
/// IFA_F_NODAD), on either end: the container can use them at once.
#[track_caller]
fn assert_no_tentative_address(net: &Net, ctr: &Netns) {
    for (ns, what) in [(ctr, "container"), (&net.node.ns, "node")] {
        let tentative = ns.ip_ok(&["-6", "addr", "show", "scope", "global", "tentative"]);
        assert!(tentative.trim().is_empty(), "tentative IPv6 addresses in the {what} right after ADD:\n{tentative}");
    }
}

/// Assert the container and the node reach each other over every address of `result`:
/// node → container address, container → its gateway.
#[track_caller]
fn assert_traffic(net: &Net, ctr: &Netns, result: &Value) {
    if net.imp == Impl::Tether {
        assert_no_tentative_address(net, ctr);
    }
    for ip in result["ips"].as_array().into_iter().flatten() {
        let addr = addr_of(ip["address"].as_str().unwrap());
        let to_ctr = ping(&net.node, addr);
        assert!(
            to_ctr.success(),
            "node cannot ping container address {addr} right after ADD\nresult: {result}\n{to_ctr}\ncontainer:\n{}\nnode:\n{}",
            ctr.ip_ok(&["addr"]),
            net.node.ip_ok(&["addr"])
        );
        let gw = ip["gateway"].as_str().unwrap_or_else(|| panic!("ptp result ip without gateway: {result}"));
        let to_gw = ping(ctr, gw);
        assert!(
            to_gw.success(),
            "container cannot ping its gateway {gw} right after ADD\nresult: {result}\n{to_gw}\ncontainer routes:\n{}{}",
            ctr.ip_ok(&["-4", "route"]),
            ctr.ip_ok(&["-6", "route"])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Result shape, per version.

fn result_shape(imp: Impl, version: &str) {
    let Some(net) = Net::new("shape", imp, version, Family::Dual, 1) else { return };
    let ctr = net.node.container("c");
    let out = net.add(&ctr);
    let result = out.result();
    assert_eq!(result["cniVersion"], version, "result cniVersion must equal the request's:\n{out}");

    let ifaces = result["interfaces"].as_array().unwrap_or_else(|| panic!("no interfaces:\n{out}"));
    assert_eq!(ifaces.len(), 2, "ptp reports the host veth and the container interface:\n{out}");
    let host = &ifaces[0];
    let host_name = host["name"].as_str().unwrap_or_default();
    assert!(!host_name.is_empty(), "host veth without a name:\n{out}");
    assert!(host["sandbox"].as_str().is_none_or(str::is_empty), "host veth must have no sandbox:\n{out}");
    let inside = &ifaces[1];
    assert_eq!(inside["name"], IFNAME, "container interface must be named CNI_IFNAME:\n{out}");
    assert_eq!(inside["sandbox"].as_str(), Some(ctr.path_str().as_str()), "sandbox must be CNI_NETNS:\n{out}");
    let mac = inside["mac"].as_str().unwrap_or_else(|| panic!("container interface without mac:\n{out}"));
    assert_eq!(mac.len(), 17, "mac {mac:?}:\n{out}");

    let ips = result["ips"].as_array().unwrap_or_else(|| panic!("no ips:\n{out}"));
    assert_eq!(ips.len(), 2, "dual stack gives two addresses:\n{out}");
    let mut families = BTreeSet::new();
    for ip in ips {
        let address = ip["address"].as_str().unwrap();
        let v6 = address.contains(':');
        families.insert(v6);
        if v6 {
            assert!(address.starts_with("fd7e:7e7e:1::") && address.ends_with("/64"), "{address}:\n{out}");
        } else {
            assert!(address.starts_with("198.18.1.") && address.ends_with("/24"), "{address}:\n{out}");
        }
        assert_eq!(ip["interface"], 1, "ips[].interface must index the container interface:\n{out}");
        if has_ip_version(version) {
            assert_eq!(ip["version"], if v6 { "6" } else { "4" }, "{version} needs ips[].version:\n{out}");
        } else {
            assert!(ip.get("version").is_none(), "{version} has no ips[].version:\n{out}");
        }
        assert!(ip["gateway"].is_string(), "ptp addresses carry their gateway:\n{out}");
    }
    assert_eq!(families.len(), 2, "one IPv4 and one IPv6 address:\n{out}");

    // The result describes reality.
    let link = ctr.link(IFNAME).unwrap_or_else(|| panic!("{IFNAME} missing in the container:\n{out}"));
    assert_eq!(link["address"].as_str(), Some(mac), "container MAC differs from the result:\n{link}");
    let have = ctr.global_addrs(IFNAME);
    for a in result_addresses(result) {
        assert!(have.contains(&a), "{a} not on the container's {IFNAME} ({have:?})");
    }
    let host_link = net.node.link(host_name).unwrap_or_else(|| panic!("host veth {host_name} missing in the node"));
    if let Some(host_mac) = host["mac"].as_str() {
        assert_eq!(host_link["address"].as_str(), Some(host_mac), "host veth MAC differs from the result");
    }

    net.del(&ctr, Some(result)).assert_ok_silent();
}

fn tether_shape(v: &str) {
    result_shape(Impl::Tether, v)
}
version_tests!(tether_shape;
    result_shape_0_3_1 => "0.3.1",
    result_shape_0_4_0 => "0.4.0",
    result_shape_1_0_0 => "1.0.0",
    result_shape_1_1_0 => "1.1.0",
);

fn reference_shape(v: &str) {
    result_shape(Impl::Reference, v)
}
version_tests!(reference_shape;
    reference_result_shape_0_3_1 => "0.3.1",
    reference_result_shape_1_0_0 => "1.0.0",
);

// ---------------------------------------------------------------------------------------------
// Traffic, per family.

fn traffic(imp: Impl, version: &str, fam: Family, x: u8) {
    let Some(net) = Net::new("traffic", imp, version, fam, x) else { return };
    let ctr = net.node.container("c");
    let result = net.add_ok(&ctr);
    let n = result["ips"].as_array().map_or(0, Vec::len);
    assert_eq!(n, usize::from(fam.v4()) + usize::from(fam.v6()), "address count: {result}");
    assert_traffic(&net, &ctr, &result);
    if imp == Impl::Tether {
        // An IPv4-only node end has no IPv6 at all (and so brings no IPv6 route to the node's
        // table, which the kernel walks on every link change); one with IPv6 keeps its own.
        let node_end = result["interfaces"][0]["name"].as_str().unwrap().to_string();
        let mode = net.node.link(&node_end).unwrap()["inet6_addr_gen_mode"].clone();
        assert_eq!(mode == "none", !fam.v6(), "{node_end}: inet6_addr_gen_mode {mode}");
        let link_local = net.node.ip_json(&["-6", "addr", "show", "dev", &node_end]).to_string().contains("fe80");
        assert!(fam.v6() || !link_local, "{node_end} has an IPv6 link-local address on an IPv4-only network");
        let ipv6_off = net.node.sysctl(&format!("net.ipv6.conf.{node_end}.disable_ipv6"));
        assert_eq!(ipv6_off == "1", !fam.v6(), "{node_end}: disable_ipv6 = {ipv6_off}");
    }
    // The container's default route(s) lead to the node.
    for (on, dst) in [(fam.v4(), "198.18.254.254"), (fam.v6(), "fd7e:7e7e:fe::fe")] {
        if on {
            let r = ctr.route_get(dst).unwrap_or_else(|| panic!("container has no route to {dst}"));
            assert_eq!(r["dev"], IFNAME, "route to {dst} must leave through {IFNAME}: {r}");
        }
    }
    net.del(&ctr, Some(&result)).assert_ok_silent();
}

#[test]
fn ipv4_traffic_both_ways() {
    traffic(Impl::Tether, "1.1.0", Family::V4, 2);
}

#[test]
fn ipv6_traffic_both_ways() {
    traffic(Impl::Tether, "1.1.0", Family::V6, 3);
}

#[test]
fn dual_stack_traffic_both_ways() {
    traffic(Impl::Tether, "1.1.0", Family::Dual, 4);
}

#[test]
fn dual_stack_traffic_with_0_3_1() {
    traffic(Impl::Tether, "0.3.1", Family::Dual, 5);
}

#[test]
fn reference_dual_stack_traffic() {
    traffic(Impl::Reference, "1.0.0", Family::Dual, 6);
}

#[test]
fn mtu_is_applied_to_both_ends() {
    let Some(net) = Net::new("mtu", Impl::Tether, "1.1.0", Family::Dual, 7) else { return };
    let net = net.with(|p| p.mtu(1400));
    let ctr = net.node.container("c");
    let result = net.add_ok(&ctr);
    let link = ctr.link(IFNAME).unwrap();
    assert_eq!(link["mtu"], 1400, "container mtu: {link}");
    let host = result["interfaces"][0]["name"].as_str().unwrap();
    let host_link = net.node.link(host).unwrap();
    assert_eq!(host_link["mtu"], 1400, "host veth mtu: {host_link}");
    assert_traffic(&net, &ctr, &result);
    net.del(&ctr, Some(&result)).assert_ok_silent();
}

// ---------------------------------------------------------------------------------------------
// CHECK.

fn check_passes_then_catches_drift(imp: Impl, version: &str, x: u8) {
    assert!(has_check(version));
    let Some(net) = Net::new("check", imp, version, Family::Dual, x) else { return };

    // 1. A removed address.
    let ctr = net.node.container("c");
    let result = net.add_ok(&ctr);
    net.check(&ctr, &result).assert_ok_silent();
    net.check(&ctr, &result).assert_ok_silent();
    let v4 = result_addresses(&result).into_iter().find(|a| !a.contains(':')).unwrap();
    ctr.ip_ok(&["addr", "del", &v4, "dev", IFNAME]);
    let out = net.check(&ctr, &result);
    out.assert_error();
    assert!(out.error_text().contains(addr_of(&v4)), "CHECK must name the missing address {v4}:\n{out}");
    net.del(&ctr, Some(&result)).assert_ok_silent();

    // 2. A removed route (the default route the IPAM config asked for).
    let ctr = net.node.container("d");
    let result = net.add_ok(&ctr);
    net.check(&ctr, &result).assert_ok_silent();
    ctr.ip_ok(&["-4", "route", "del", "default"]);
    let out = net.check(&ctr, &result);
    out.assert_error();
    let text = out.error_text();
    assert!(text.contains("0.0.0.0") || text.contains("default"), "CHECK must name the missing default route:\n{out}");
    net.del(&ctr, Some(&result)).assert_ok_silent();

    // 2b. The default route moved to another table (as `sbr` does): not where the result says.
    let ctr = net.node.container("t");
    let result = net.add_ok(&ctr);
    let default = ctr.ip_json(&["-4", "route", "show", "default"]);
    let gw = default[0]["gateway"].as_str().expect("a default route via a gateway").to_string();
    ctr.ip_ok(&["-4", "route", "add", "default", "via", &gw, "dev", IFNAME, "onlink", "table", "100"]);
    ctr.ip_ok(&["-4", "route", "del", "default", "table", "main"]);
    let out = net.check(&ctr, &result);
    out.assert_error();
    let text = out.error_text();
    assert!(text.contains("0.0.0.0") || text.contains("default"), "CHECK must name the moved default route:\n{out}");
    net.del(&ctr, Some(&result)).assert_ok_silent();

    // 3. The interface is gone.
    let ctr = net.node.container("e");
    let result = net.add_ok(&ctr);
    ctr.ip_ok(&["link", "del", IFNAME]);
    let out = net.check(&ctr, &result);
    out.assert_error();
    assert!(out.error_text().contains(IFNAME), "CHECK must name the missing interface:\n{out}");
    net.del(&ctr, Some(&result)).assert_ok_silent();

    // 4. tether: the gateway the node holds (on `lo`, see README) is gone.
    if imp == Impl::Tether {
        let ctr = net.node.container("g");
        let result = net.add_ok(&ctr);
        let gw = result["ips"][0]["gateway"].as_str().expect("a gateway").to_string();
        let held = if gw.contains(':') { format!("{gw}/128") } else { format!("{gw}/32") };
        net.node.ip_ok(&["addr", "del", &held, "dev", "lo"]);
        let out = net.check(&ctr, &result);
        out.assert_error();
        assert!(out.error_text().contains(&gw), "CHECK must name the missing gateway {gw}:\n{out}");
        net.del(&ctr, Some(&result)).assert_ok_silent();
    }
}

#[test]
fn check_passes_and_catches_drift() {
    check_passes_then_catches_drift(Impl::Tether, "1.1.0", 8);
}

#[test]
fn check_passes_and_catches_drift_0_4_0() {
    check_passes_then_catches_drift(Impl::Tether, "0.4.0", 9);
}

#[test]
fn reference_check_passes_and_catches_drift() {
    check_passes_then_catches_drift(Impl::Reference, "1.0.0", 10);
}

#[test]
fn check_catches_a_missing_reservation() {
    let Some(net) = Net::new("checkipam", Impl::Tether, "1.1.0", Family::V4, 11) else { return };
    let ctr = net.node.container("c");
    let result = net.add_ok(&ctr);
    let before = net.node.reservations();
    assert_eq!(before.len(), 1, "one reservation after ADD: {before:?}");
    for r in &before {
        std::fs::remove_file(net.node.data_dir().join(r)).unwrap();
    }
    let out = net.check(&ctr, &result);
    out.assert_error();
    net.del(&ctr, Some(&result)).assert_ok_silent();
}

// ---------------------------------------------------------------------------------------------
// DEL.

fn del_variants(imp: Impl, version: &str, x: u8) {
    let Some(net) = Net::new("del", imp, version, Family::Dual, x) else { return };
    let baseline = net.node.state();

    // With prevResult: everything goes, twice is fine.
    let ctr = net.node.container("a");
    let result = net.add_ok(&ctr);
    assert_ne!(net.node.state(), baseline, "ADD changed nothing on the node?");
    net.del(&ctr, Some(&result)).assert_ok_silent();
    assert!(ctr.link(IFNAME).is_none(), "{IFNAME} still in the container after DEL");
    assert_eq!(net.node.state(), baseline, "node not back to its state before ADD");
    net.del(&ctr, Some(&result)).assert_ok_silent();
    net.del(&ctr, None).assert_ok_silent();

    // Without prevResult.
    let ctr = net.node.container("b");
    net.add_ok(&ctr);
    net.del(&ctr, None).assert_ok_silent();
    assert!(ctr.link(IFNAME).is_none(), "{IFNAME} still in the container after DEL without prevResult");
    assert_eq!(net.node.state(), baseline, "DEL without prevResult left state behind");

    // Without CNI_NETNS: the reservation is released; the pair goes with the namespace.
    let ctr = net.node.container("c");
    let result = net.add_ok(&ctr);
    let conf = with_prev(&net.conf(), &result);
    net.plugin.del_without_netns(&conf, ctr.name(), IFNAME).assert_ok_silent();
    assert_eq!(net.node.reservations(), baseline.reservations, "DEL without CNI_NETNS must release the address");
    net.plugin.del_without_netns(&conf, ctr.name(), IFNAME).assert_ok_silent();
    drop(ctr);
    assert!(
        eventually(|| net.node.state() == baseline),
        "node state after DEL without netns and namespace removal: {:?}, expected {baseline:?}",
        net.node.state()
    );

    // The namespace was deleted before DEL (CNI_NETNS names a path that is gone).
    let ctr = net.node.container("d");
    let result = net.add_ok(&ctr);
    let (id, path) = (ctr.name().to_string(), ctr.path_str());
    drop(ctr);
    let inv = tether_tests::Invocation {
        command: Some("DEL".into()),
        container_id: Some(id.clone()),
        netns: Some(path),
        ifname: Some(IFNAME.into()),
        ..Default::default()
    };
    net.plugin.invoke(&inv, &with_prev(&net.conf(), &result)).assert_ok_silent();
    net.plugin.invoke(&inv, &net.conf()).assert_ok_silent();
    assert!(
        eventually(|| net.node.state() == baseline),
        "node state after DEL of a deleted namespace: {:?}, expected {baseline:?}",
        net.node.state()
    );

    // Never added.
    let ctr = net.node.container("e");
    net.del(&ctr, None).assert_ok_silent();
    assert_eq!(net.node.state(), baseline);
}

#[test]
fn del_is_idempotent_and_needs_neither_netns_nor_prev_result() {
    del_variants(Impl::Tether, "1.1.0", 12);
}

#[test]
fn del_variants_0_3_1() {
    del_variants(Impl::Tether, "0.3.1", 13);
}

#[test]
fn reference_del_variants() {
    del_variants(Impl::Reference, "1.0.0", 14);
}

// ---------------------------------------------------------------------------------------------
// ADD rollback.

fn rollback_when_ipam_is_exhausted(imp: Impl, ipam: Ipam, x: u8) {
    let Some(net) = Net::new("exhaust", imp, "1.0.0", Family::V4, x) else { return };
    // A /30: .0 network, .1 gateway, .3 broadcast: exactly one address to hand out.
    let net = net.with(|p| p.ipam(ipam).single_v4_range(&format!("198.18.{x}.0/30")));
    let first = net.node.container("a");
    let result = net.add_ok(&first);
    let before = net.node.state();
    assert_eq!(before.reservations.len(), 1, "one reservation: {before:?}");

    let second = net.node.container("b");
    let out = net.add(&second);
    out.assert_error();
    assert_eq!(net.node.state(), before, "failed ADD left state on the node:\n{out}");
    assert_eq!(second.link_names(), BTreeSet::from(["lo".to_string()]), "failed ADD left a link in the container");
    // The first container is unharmed.
    assert_traffic(&net, &first, &result);
    net.del(&second, None).assert_ok_silent();
    assert_eq!(net.node.state(), before, "DEL after a failed ADD touched another container's state");
    net.del(&first, Some(&result)).assert_ok_silent();
}

#[test]
fn rollback_when_ipam_is_exhausted_tether_ipam() {
    rollback_when_ipam_is_exhausted(Impl::Tether, Ipam::Tether, 15);
}

#[test]
fn rollback_when_ipam_is_exhausted_host_local() {
    rollback_when_ipam_is_exhausted(Impl::Tether, Ipam::HostLocal, 16);
}

#[test]
fn reference_rollback_when_ipam_is_exhausted() {
    rollback_when_ipam_is_exhausted(Impl::Reference, Ipam::HostLocal, 17);
}

fn rollback_when_ifname_exists(imp: Impl, ipam: Ipam, x: u8) {
    let Some(net) = Net::new("exists", imp, "1.0.0", Family::Dual, x) else { return };
    // The IPv4 range is a /30 with a single address: a leaked reservation shows on the retry.
    let net = net.with(|mut p| {
        p.ranges[0] = vec![json!({"subnet": format!("198.18.{x}.0/30")})];
        p.ipam(ipam)
    });
    let before = net.node.state();
    let ctr = net.node.container("c");
    // A veth pair kept inside the container (the dummy driver may not be loaded on the machine).
    ctr.ip_ok(&["link", "add", IFNAME, "type", "veth", "peer", "name", "ttpeer"]);
    ctr.ip_ok(&["addr", "add", &format!("198.18.{x}.250/32"), "dev", IFNAME]);
    ctr.ip_ok(&["link", "set", IFNAME, "up"]);
    let existing = ctr.link(IFNAME).unwrap();

    let out = net.add(&ctr);
    out.assert_error();
    let after = ctr.link(IFNAME).unwrap_or_else(|| panic!("the existing {IFNAME} is gone:\n{out}"));
    assert_eq!(after["ifindex"], existing["ifindex"], "the existing {IFNAME} was replaced:\n{out}");
    assert_eq!(after["address"], existing["address"], "the existing {IFNAME} changed its MAC:\n{out}");
    assert_eq!(ctr.global_addrs(IFNAME), vec![format!("198.18.{x}.250/32")], "the existing {IFNAME} changed:\n{out}");
    let expected: BTreeSet<String> = ["lo", IFNAME, "ttpeer"].iter().map(|s| s.to_string()).collect();
    assert_eq!(ctr.link_names(), expected, "failed ADD left links in the container:\n{out}");
    assert_eq!(net.node.state(), before, "failed ADD left state on the node (reservation released?):\n{out}");

    // With the name free again, ADD gets the one address: the failed ADD released it.
    ctr.ip_ok(&["link", "del", IFNAME]);
    let result = net.add_ok(&ctr);
    assert!(result_addresses(&result).contains(&format!("198.18.{x}.2/30")), "retry after rollback: {result}");
    assert_traffic(&net, &ctr, &result);
    net.del(&ctr, Some(&result)).assert_ok_silent();
    assert_eq!(net.node.state(), before);
}

#[test]
fn rollback_when_ifname_exists_tether_ipam() {
    rollback_when_ifname_exists(Impl::Tether, Ipam::Tether, 18);
}

#[test]
fn rollback_when_ifname_exists_host_local() {
    rollback_when_ifname_exists(Impl::Tether, Ipam::HostLocal, 19);
}

#[test]
fn reference_rollback_when_ifname_exists() {
    rollback_when_ifname_exists(Impl::Reference, Ipam::HostLocal, 20);
}

/// A runtime retrying an ADD that had succeeded (its answer lost): the retry fails (the
/// interfaces exist), and its rollback must not release the live attachment's addresses.
fn failed_repeat_add_keeps_the_live_reservation(ipam: Ipam, x: u8) {
    let Some(net) = Net::new("repeat", Impl::Tether, "1.0.0", Family::Dual, x) else { return };
    let net = net.with(|p| p.ipam(ipam));
    let ctr = net.node.container("r");
    let result = net.add_ok(&ctr);
    let before = net.node.state();
    let out = net.add(&ctr);
    out.assert_error();
    assert_eq!(net.node.state(), before, "the failed repeat changed the node (reservation released?):\n{out}");
    assert_traffic(&net, &ctr, &result);
    net.del(&ctr, Some(&result)).assert_ok_silent();
}

#[test]
fn failed_repeat_add_keeps_the_live_reservation_tether_ipam() {
    failed_repeat_add_keeps_the_live_reservation(Ipam::Tether, 21);
}

#[test]
fn failed_repeat_add_keeps_the_live_reservation_host_local() {
    failed_repeat_add_keeps_the_live_reservation(Ipam::HostLocal, 22);
}

// ---------------------------------------------------------------------------------------------
// Masquerade.

fn masq_state_follows_the_attachment(x: u8, del: &str) {
    let Some(net) = Net::new("masq", Impl::Tether, "1.1.0", Family::Dual, x) else { return };
    if !require_tool("nft") {
        return;
    }
    let net = net.with(|p| p.masq(true));
    let ctr = net.node.container("c");
    let result = net.add_ok(&ctr);
    let ruleset = net.node.nft_ruleset();
    assert!(has_key(&ruleset, "masquerade"), "no masquerade statement after ADD:\n{}", net.node.nft_text());
    for a in result_addresses(&result) {
        assert!(nft_mentions(&net.node, addr_of(&a)), "{a} not in the node's nftables state:\n{}", net.node.nft_text());
    }
    assert_traffic(&net, &ctr, &result);
    match del {
        "prev" => net.del(&ctr, Some(&result)).assert_ok_silent(),
        "no-prev" => net.del(&ctr, None).assert_ok_silent(),
        "no-netns" => {
            net.plugin.del_without_netns(&with_prev(&net.conf(), &result), ctr.name(), IFNAME).assert_ok_silent()
        }
        other => panic!("{other}"),
    };
    for a in result_addresses(&result) {
        assert!(
            !nft_mentions(&net.node, addr_of(&a)),
            "{a} still in the node's nftables state after DEL ({del}):\n{}",
            net.node.nft_text()
        );
    }
}

#[test]
fn masquerade_state_present_after_add_and_gone_after_del() {
    masq_state_follows_the_attachment(21, "prev");
}

#[test]
fn masquerade_state_gone_after_del_without_prev_result() {
    masq_state_follows_the_attachment(22, "no-prev");
}

#[test]
fn masquerade_state_gone_after_del_without_netns() {
    masq_state_follows_the_attachment(23, "no-netns");
}

#[test]
fn no_masquerade_state_without_ip_masq() {
    let Some(net) = Net::new("nomasq", Impl::Tether, "1.1.0", Family::Dual, 24) else { return };
    if !require_tool("nft") {
        return;
    }
    let ctr = net.node.container("c");
    let result = net.add_ok(&ctr);
    for a in result_addresses(&result) {
        assert!(
            !nft_mentions(&net.node, addr_of(&a)),
            "ipMasq is off but {a} is in nftables:\n{}",
            net.node.nft_text()
        );
    }
    net.del(&ctr, Some(&result)).assert_ok_silent();
}

/// The arguments containerd's CRI plugin sends, with the empty labels runtimes do send.
const RUNTIME_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
                            K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=";

fn runtime_args_are_accepted(imp: Impl, ipam: Ipam, x: u8) {
    let Some(net) = Net::new("args", imp, "1.0.0", Family::V4, x) else { return };
    let net = net.with(|p| p.ipam(ipam));
    let ctr = net.node.container("c");
    let inv = tether_tests::plugin::Invocation::attachment("ADD", &ctr, IFNAME).with_args(RUNTIME_ARGS);
    let result = net.plugin.invoke(&inv, &net.conf()).result().clone();
    let del = tether_tests::plugin::Invocation::attachment("DEL", &ctr, IFNAME).with_args(RUNTIME_ARGS);
    net.plugin.invoke(&del, &with_prev(&net.conf(), &result)).assert_ok_silent();
}

#[test]
fn runtime_args_with_empty_values_are_accepted_tether_ipam() {
    runtime_args_are_accepted(Impl::Tether, Ipam::Tether, 8);
}

#[test]
fn runtime_args_with_empty_values_are_accepted_host_local() {
    runtime_args_are_accepted(Impl::Tether, Ipam::HostLocal, 9);
}

#[test]
fn reference_runtime_args_with_empty_values_are_accepted() {
    runtime_args_are_accepted(Impl::Reference, Ipam::HostLocal, 10);
}

/// The node end of a ptp result (the interface without a sandbox).
fn node_end(result: &Value) -> String {
    let ifaces = result["interfaces"].as_array().expect("interfaces");
    let node = ifaces.iter().find(|i| i.get("sandbox").is_none()).expect("a node-side interface");
    node["name"].as_str().unwrap().to_string()
}

#[test]
fn del_keeps_the_reservation_while_the_node_end_cannot_be_deleted() {
    let Some(net) = Net::new("delkeep", Impl::Tether, "1.1.0", Family::V4, 11) else { return };
    if !require_tool("setpriv") {
        return;
    }
    let ctr = net.node.container("c");
    let result = net.add_ok(&ctr);
    let held = net.node.reservations();
    // Without capabilities the kernel refuses to delete the link (EPERM); the store stays writable.
    tether_tests::cmd::tool("chown", &["-R", "65534:65534", &net.node.data_dir().display().to_string()])
        .assert_success();
    let denied = net.plugin.clone().unprivileged(65534).del(&with_prev(&net.conf(), &result), &ctr, IFNAME);
    assert_eq!(denied.assert_error(), 100, "{denied}");
    assert!(denied.error_text().contains(&node_end(&result)), "the error names the node end: {denied}");
    assert!(net.node.link(&node_end(&result)).is_some(), "the node end is still there");
    assert_eq!(net.node.reservations(), held, "DEL released the address while its /32 route still exists");
    // The retry finishes the job.
    net.del(&ctr, Some(&result)).assert_ok_silent();
    assert!(net.node.reservations().is_empty());
}

#[test]
fn del_falls_back_only_to_a_pair_with_the_node() {
    let Some(net) = Net::new("delfb", Impl::Tether, "1.1.0", Family::V4, 14) else { return };
    let other = net.node.container("other");
    // CNI_NETNS is the node's own namespace: its veth `ctr0` (peer elsewhere) stays.
    net.node.ip_ok(&["link", "add", "ctr0", "type", "veth", "peer", "name", "o0", "netns", other.name()]);
    net.plugin.del(&net.conf(), &net.node.ns, "ctr0").assert_ok_silent();
    assert!(net.node.link("ctr0").is_some(), "DEL deleted a link of the node's own namespace");

    // Not a pair with the node: no veth (a bridge: this kernel may lack `dummy`), a veth to a third
    // namespace, a veth inside the container.
    let ctr = net.node.container("c");
    ctr.ip_ok(&["link", "add", "eth0", "type", "bridge"]);
    ctr.ip_ok(&["link", "add", "eth1", "type", "veth", "peer", "name", "o1", "netns", other.name()]);
    ctr.ip_ok(&["link", "add", "eth2", "type", "veth", "peer", "name", "eth2p"]);
    for ifname in ["eth0", "eth1", "eth2"] {
        net.plugin.del(&net.conf(), &ctr, ifname).assert_ok_silent();
        assert!(ctr.link(ifname).is_some(), "DEL deleted {ifname}, which is no pair with the node");
    }

    // A pair with the node that another plugin made (named otherwise): its container end goes.
    net.node.ip_ok(&["link", "add", "vethref0", "type", "veth", "peer", "name", "eth3", "netns", ctr.name()]);
    net.plugin.del(&net.conf(), &ctr, "eth3").assert_ok_silent();
    assert!(ctr.link("eth3").is_none() && net.node.link("vethref0").is_none(), "the foreign pair is still there");
}

fn gc_removes_stale_links(imp: Impl, x: u8) {
    let Some(net) = Net::new("gclinks", imp, "1.1.0", Family::Dual, x) else { return };
    let net = net.with(|p| p.masq(true));
    let (keep, alive, gone) = (net.node.container("keep"), net.node.container("alive"), net.node.container("gone"));
    let (rk, ra, rg) = (net.add_ok(&keep), net.add_ok(&alive), net.add_ok(&gone));
    drop(gone); // a container whose namespace is gone: its pair went with it
                // Another network's attachment on the same node, not in this network's valid list.
    let other = Ptp::new("1.1.0", &format!("tt{x}o"), x + 1, Family::V4, &net.node.data_dir());
    let octr = net.node.container("o");
    let ro = net.plugin.add(&other.conf(), &octr, IFNAME).result().clone();

    net.plugin.gc(&with_valid_attachments(&net.conf(), &[(keep.name(), IFNAME)])).assert_ok_silent();
    assert!(net.node.link(&node_end(&ra)).is_none(), "GC kept the node end of a stale, live attachment");
    assert!(alive.link(IFNAME).is_none(), "the stale container end went with its pair");
    assert!(net.node.link(&node_end(&rk)).is_some(), "GC deleted the valid attachment's node end");
    assert!(net.node.link(&node_end(&ro)).is_some(), "GC deleted another network's node end");
    let left = net.node.reservations();
    for stale in [&ra, &rg] {
        for a in result_addresses(stale) {
            assert!(!left.iter().any(|r| r.ends_with(addr_of(&a))), "GC kept the stale {a}: {left:?}");
            assert!(!nft_mentions(&net.node, addr_of(&a)), "GC kept masquerade state of the stale {a}");
        }
    }
    for a in result_addresses(&rk).iter().chain(result_addresses(&ro).iter()) {
        assert!(left.iter().any(|r| r.ends_with(addr_of(a))), "GC released {a}: {left:?}");
    }
    net.check(&keep, &rk).assert_ok_silent();
    assert_traffic(&net, &keep, &rk);
    net.del(&keep, Some(&rk)).assert_ok_silent();
    net.plugin.del(&with_prev(&other.conf(), &ro), &octr, IFNAME).assert_ok_silent();
}

#[test]
fn gc_removes_the_node_ends_of_stale_attachments() {
    gc_removes_stale_links(Impl::Tether, 15);
}

// ---------------------------------------------------------------------------------------------
// STATUS and GC (1.1.0).

#[test]
fn status_succeeds_silently() {
    let Some(net) = Net::new("status", Impl::Tether, "1.1.0", Family::Dual, 25) else { return };
    net.plugin.status(&net.conf()).assert_ok_silent();
    // The SPEC-shaped document (plugin-specific keys, runtime-injected keys) is accepted too.
    let mut doc = net.conf();
    doc["keyA"] = json!(["some more", "plugin specific", "configuration"]);
    doc["dns"] = json!({"nameservers": ["198.18.25.1"]});
    doc["runtimeConfig"] = json!({"mac": "00:11:22:33:44:66"});
    doc["args"] = json!({"cni": {"labels": [{"key": "app", "value": "db"}]}});
    net.plugin.status(&doc).assert_ok_silent();
}

#[test]
fn gc_removes_only_stale_attachments() {
    let Some(net) = Net::new("gc", Impl::Tether, "1.1.0", Family::Dual, 26) else { return };
    let net = net.with(|p| p.masq(true));
    let keep = net.node.container("keep");
    let stale = net.node.container("stale");
    let kept = net.add_ok(&keep);
    let gone = net.add_ok(&stale);
    assert_eq!(net.node.reservations().len(), 4, "two dual-stack reservations");

    net.plugin.gc(&with_valid_attachments(&net.conf(), &[(keep.name(), IFNAME)])).assert_ok_silent();
    let left = net.node.reservations();
    for a in result_addresses(&kept) {
        assert!(left.iter().any(|r| r.ends_with(addr_of(&a))), "GC released the valid {a}: {left:?}");
        assert!(nft_mentions(&net.node, addr_of(&a)), "GC removed masquerade state of the valid {a}");
    }
    for a in result_addresses(&gone) {
        assert!(!left.iter().any(|r| r.ends_with(addr_of(&a))), "GC kept the stale {a}: {left:?}");
        assert!(!nft_mentions(&net.node, addr_of(&a)), "GC kept masquerade state of the stale {a}");
    }
    assert_traffic(&net, &keep, &kept);
    net.del(&keep, Some(&kept)).assert_ok_silent();
    net.del(&stale, Some(&gone)).assert_ok_silent();
}

#[test]
fn gc_of_every_attachment_leaves_the_node_as_it_was() {
    let Some(net) = Net::new("gcall", Impl::Tether, "1.1.0", Family::Dual, 31) else { return };
    let baseline = net.node.state();
    let (a, b) = (net.node.container("a"), net.node.container("b"));
    net.add_ok(&a);
    let rb = net.add_ok(&b);
    // One node end gone behind the plugin's back (a DEL killed half-way, an operator): its use of
    // the gateways is still recorded, and GC finds it stale.
    net.node.ip_ok(&["link", "del", &node_end(&rb)]);
    net.plugin.gc(&with_valid_attachments(&net.conf(), &[])).assert_ok_silent();
    assert_eq!(net.node.state(), baseline, "GC of every attachment left state on the node (the gateways?)");
}

#[test]
fn networks_leave_no_nftables_state_after_their_last_del() {
    let Some(net) = Net::new("nftgone", Impl::Tether, "1.1.0", Family::Dual, 16) else { return };
    if !require_tool("nft") {
        return;
    }
    let before = net.node.nft_text();
    // Many short-lived networks, masqueraded, half of them isolated: each one's state goes with its last DEL.
    for i in 0..12u8 {
        let conf = {
            let p = Ptp::new("1.1.0", &format!("short{i}"), 40 + i, Family::Dual, &net.node.data_dir()).masq(true);
            let mut c = p.conf();
            c["isolate"] = json!(i % 2 == 0);
            c
        };
        let ctr = net.node.container(&format!("s{i}"));
        let result = net.plugin.add(&conf, &ctr, IFNAME).result().clone();
        assert_ne!(net.node.nft_text(), before, "ADD made no nftables state?");
        net.plugin.del(&with_prev(&conf, &result), &ctr, IFNAME).assert_ok_silent();
        assert_eq!(net.node.nft_text(), before, "network short{i} left nftables state behind");
    }
    // One network, attachments added and deleted in parallel, twice.
    let mut conf = Ptp::new("1.1.0", "busy", 16, Family::Dual, &net.node.data_dir()).masq(true).conf();
    conf["isolate"] = json!(true);
    for round in 0..2 {
        let ctrs: Vec<Netns> = (0..12).map(|i| net.node.container(&format!("p{round}-{i}"))).collect();
        let (conf, plugin) = (&conf, &net.plugin);
        std::thread::scope(|s| {
            for ctr in &ctrs {
                s.spawn(move || {
                    let result = plugin.add(conf, ctr, IFNAME).result().clone();
                    plugin.del(&with_prev(conf, &result), ctr, IFNAME).assert_ok_silent();
                });
            }
        });
        assert_eq!(net.node.nft_text(), before, "round {round}: parallel ADD/DEL left nftables state behind");
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

#[test]
fn sixty_four_containers_in_parallel() {
    let Some(net) = Net::new("par", Impl::Tether, "1.1.0", Family::Dual, 27) else { return };
    let net = net.with(|p| p.masq(true));
    let baseline = net.node.state();
    let ctrs: Vec<Netns> = (0..64).map(|i| net.node.container(&format!("p{i}"))).collect();

    let net = &net;
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs.iter().map(|c| s.spawn(move || net.add(c))).collect();
        handles.into_iter().map(|h| h.join().unwrap().result().clone()).collect()
    });
    let mut seen = BTreeSet::new();
    for r in &results {
        for a in result_addresses(r) {
            assert!(seen.insert(a.clone()), "address {a} handed out twice");
        }
    }
    assert_eq!(seen.len(), 128, "64 dual-stack containers, 128 distinct addresses");
    assert_eq!(net.node.reservations().len(), 128);
    std::thread::scope(|s| {
        for (c, r) in ctrs.iter().zip(&results) {
            s.spawn(move || assert_traffic(net, c, r));
        }
    });

    std::thread::scope(|s| {
        let handles: Vec<_> = ctrs.iter().zip(&results).map(|(c, r)| s.spawn(move || net.del(c, Some(r)))).collect();
        for h in handles {
            h.join().unwrap().assert_ok_silent();
        }
    });
    assert_eq!(net.node.state(), baseline, "state left after 64 DELs");
    for c in &ctrs {
        assert!(c.link(IFNAME).is_none(), "{IFNAME} left in {}", c.name());
    }
    for a in &seen {
        assert!(!nft_mentions(&net.node, addr_of(a)), "{a} left in nftables");
    }
}

#[test]
fn the_gateway_outlives_no_attachment_while_the_node_churns() {
    // The gateway the node holds drops to no users and comes back again and again while ADDs and
    // DELs race: each ADD must find it there, and the last DEL must take it. (The window the
    // record's lock closes, a last DEL removing the gateway just after an ADD found it, is too
    // narrow to hit reliably here: without the lock this passed 3 runs of 3. The lock's exclusion
    // itself is a unit test in plugin/src/ptp/users.rs.)
    let Some(net) = Net::new("churn", Impl::Tether, "1.1.0", Family::Dual, 32) else { return };
    let baseline = net.node.state();
    let ctrs: Vec<Netns> = (0..12).map(|i| net.node.container(&format!("ch{i}"))).collect();
    let net = &net;
    std::thread::scope(|s| {
        for c in &ctrs {
            s.spawn(move || {
                for _ in 0..4 {
                    let result = net.add_ok(c);
                    assert_traffic(net, c, &result);
                    net.del(c, Some(&result)).assert_ok_silent();
                }
            });
        }
    });
    assert_eq!(net.node.state(), baseline, "state left after the churn (a gateway on lo?)");
}

// ---------------------------------------------------------------------------------------------
// The same flows through cnitool (libcni), as a runtime drives them. Debian's cnitool 1.1.2
// speaks up to spec 1.0.0 and knows add, check and del; status and gc run when it knows them.

fn cnitool_flow(imp: Impl, ipam: Ipam, x: u8) {
    let Some(net) = Net::new("tool", imp, "1.0.0", Family::Dual, x) else { return };
    let Some(tool_path) = tether_tests::cnitool::require_cnitool() else { return };
    let net = net.with(|p| p.ipam(ipam).masq(imp == Impl::Tether));
    let mut conflist = net.ptp.conflist();
    if imp == Impl::Reference {
        conflist["plugins"][0] = net.ptp.reference_conf();
        if let Some(o) = conflist["plugins"][0].as_object_mut() {
            o.remove("cniVersion");
            o.remove("name");
        }
    }
    let tool = tether_tests::cnitool::Cnitool::new(tool_path, &net.node.ns, &conflist);
    let baseline = net.node.state();
    let ctr = net.node.container("c");

    let result = tool.add(&ctr, IFNAME);
    assert_eq!(result["cniVersion"], "1.0.0", "cnitool add result: {result}");
    assert_eq!(result["interfaces"].as_array().map(Vec::len), Some(2), "cnitool add result: {result}");
    let have = ctr.global_addrs(IFNAME);
    for a in result_addresses(&result) {
        assert!(have.contains(&a), "{a} not on the container's {IFNAME} ({have:?})");
    }
    assert_traffic(&net, &ctr, &result);
    if imp == Impl::Tether {
        for a in result_addresses(&result) {
            assert!(nft_mentions(&net.node, addr_of(&a)), "{a} not masqueraded after cnitool add");
        }
    }

    tool.run("check", &ctr, IFNAME).assert_success();
    for verb in ["status", "gc"] {
        if tool.supports(verb) {
            tool.run(verb, &ctr, IFNAME).assert_success();
        }
    }

    // Drift: CHECK through libcni (prevResult from its cache) fails and names the address.
    let v4 = result_addresses(&result).into_iter().find(|a| !a.contains(':')).unwrap();
    ctr.ip_ok(&["addr", "del", &v4, "dev", IFNAME]);
    let check = tool.run("check", &ctr, IFNAME);
    assert!(!check.success(), "cnitool check must fail after the address was removed:\n{check}");
    assert!(check.stderr.contains(addr_of(&v4)), "cnitool check must name {v4}:\n{check}");

    tool.run("del", &ctr, IFNAME).assert_success();
    assert!(ctr.link(IFNAME).is_none(), "{IFNAME} left after cnitool del");
    assert_eq!(net.node.state(), baseline, "state left on the node after cnitool del");
    for a in result_addresses(&result) {
        assert!(!nft_mentions(&net.node, addr_of(&a)), "{a} left in nftables after cnitool del");
    }
    tool.run("del", &ctr, IFNAME).assert_success();
}

#[test]
fn cnitool_add_check_del_with_tether_ipam() {
    cnitool_flow(Impl::Tether, Ipam::Tether, 28);
}

#[test]
fn cnitool_add_check_del_with_host_local() {
    cnitool_flow(Impl::Tether, Ipam::HostLocal, 29);
}

#[test]
fn reference_cnitool_add_check_del() {
    cnitool_flow(Impl::Reference, Ipam::HostLocal, 30);
}
