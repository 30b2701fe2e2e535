//! Tier 3: `tether` in bridge mode, end to end: result shape, gateway and sealed (isolated)
//! bridges, every option, parallel ADDs on one bridge, rollback, DEL without netns, CHECK drift,
//! GC, and the scenario's reachability matrix. Every test makes its own node and container
//! namespaces and uses addresses from 198.18.0.0/15 and fd7e:7e7e::/32 only.
//!
//! `reference_*` tests run the same assertions against the reference `bridge` + `host-local`
//! from /usr/lib/cni where the two are meant to agree.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tether_tests::config::{
    addr_of, has_ip_version, result_addresses, v4_subnet, v6_subnet, with_prev, with_valid_attachments, Family,
};
use tether_tests::netns::{Netns, Node};
use tether_tests::plugin::{Outcome, Plugin};
use tether_tests::wait::eventually;
use tether_tests::{gate, kernel, require_root, require_tool, version_tests, Invocation};

const IFNAME: &str = "eth0";

/// A node with one bridge network (subnet index `x`, bridge `tbr<x>`, network `tb<x>`).
struct Net {
    node: Node,
    plugin: Plugin,
    conf: Value,
    reference: bool,
}

/// The network configuration: bridge mode, tether-ipam with the subnets of `fam`, plus `extra`
/// keys (which may replace `ipam`).
fn bridge_conf(version: &str, x: u8, fam: Family, data_dir: &str, extra: &Value) -> Value {
    let mut ranges = Vec::new();
    if fam.v4() {
        ranges.push(json!([{"subnet": v4_subnet(x)}]));
    }
    if fam.v6() {
        ranges.push(json!([{"subnet": v6_subnet(x)}]));
    }
    let mut v = json!({
        "cniVersion": version, "name": format!("tb{x}"), "type": "tether", "mode": "bridge",
        "bridge": format!("tbr{x}"),
        "ipam": {"type": "tether-ipam", "dataDir": data_dir, "ranges": ranges},
    });
    for (k, val) in extra.as_object().into_iter().flatten() {
        v[k] = val.clone();
    }
    v
}

impl Net {
    #[track_caller]
    fn new(tag: &str, version: &str, fam: Family, x: u8, extra: Value) -> Option<Net> {
        if !require_root() || !require_tool("ping") || !require_tool("nft") {
            return None;
        }
        let node = Node::new(tag);
        let conf = bridge_conf(version, x, fam, &node.data_dir().display().to_string(), &extra);
        Some(Net { plugin: Plugin::tether(&node.ns), node, conf, reference: false })
    }

    /// The same network driven by the reference `bridge` with `host-local`.
    #[track_caller]
    fn reference(tag: &str, version: &str, fam: Family, x: u8, extra: Value) -> Option<Net> {
        let mut net = Net::new(tag, version, fam, x, extra)?;
        if tether_tests::bins::reference("bridge").is_none() {
            assert!(!tether_tests::ci_required(), "/usr/lib/cni/bridge is missing; CI is set");
            eprintln!("SKIPPED: reference bridge not installed");
            return None;
        }
        net.plugin = Plugin::reference("bridge", &net.node.ns);
        net.conf["type"] = json!("bridge");
        net.conf["ipam"]["type"] = json!("host-local");
        net.conf.as_object_mut().unwrap().remove("mode");
        net.reference = true;
        Some(net)
    }

    fn bridge(&self) -> String {
        self.conf["bridge"].as_str().unwrap().to_string()
    }

    fn add(&self, ctr: &Netns) -> Outcome {
        self.plugin.add(&self.conf, ctr, IFNAME)
    }

    #[track_caller]
    fn add_ok(&self, ctr: &Netns) -> Value {
        self.add(ctr).result().clone()
    }

    fn del(&self, ctr: &Netns, prev: Option<&Value>) -> Outcome {
        let conf = prev.map(|p| with_prev(&self.conf, p)).unwrap_or_else(|| self.conf.clone());
        self.plugin.del(&conf, ctr, IFNAME)
    }

    fn check(&self, ctr: &Netns, prev: &Value) -> Outcome {
        self.plugin.check(&with_prev(&self.conf, prev), ctr, IFNAME)
    }
}

/// One ping; the reference's gateway address is tentative for 1-2 s (DAD), so for the
/// reference alone it is retried for up to 5 s. tether must answer at once.
fn ping(net: &Net, from: &Netns, addr: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if from.ping(addr) {
            return true;
        }
        if !net.reference || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn first_addr(result: &Value, v6: bool) -> String {
    result_addresses(result).into_iter().find(|a| a.contains(':') == v6).map(|a| addr_of(&a).to_string()).unwrap()
}

/// A link-local ping through `eth0` (the harness's `ping` only takes test addresses).
fn ping_link_local(from: &Netns, ll: &str) -> bool {
    assert!(ll.starts_with("fe80:"), "{ll}");
    from.exec(&["ping", "-6", "-n", "-q", "-c1", "-W1", &format!("{ll}%{IFNAME}")]).success()
}

/// The bridge port options `ip -d` shows for `dev`.
fn slave_data(node: &Netns, dev: &str) -> Value {
    node.link(dev).unwrap_or_else(|| panic!("{dev} missing"))["linkinfo"]["info_slave_data"].clone()
}

fn host_veth(result: &Value) -> String {
    result["interfaces"][1]["name"].as_str().unwrap().to_string()
}

/// A port's VLANs as `bridge -j vlan show` reports them: (VLAN, PVID, egress untagged), in order,
/// ranges expanded.
fn port_vlans(node: &Netns, dev: &str) -> Vec<(u64, bool, bool)> {
    let text = node.exec_ok(&["bridge", "-j", "vlan", "show", "dev", dev]);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bridge -j: {e}: {text}"));
    let mut out = Vec::new();
    for entry in doc[0]["vlans"].as_array().into_iter().flatten() {
        let flags = entry["flags"].as_array().cloned().unwrap_or_default();
        let has = |f: &str| flags.iter().any(|x| x == f);
        let first = entry["vlan"].as_u64().unwrap_or_else(|| panic!("{doc}"));
        let last = entry["vlanEnd"].as_u64().unwrap_or(first);
        out.extend((first..=last).map(|v| (v, has("PVID"), has("Egress Untagged"))));
    }
    out
}

/// On a kernel without bridge VLAN filtering: ADD of a VLAN network fails with an error that
/// names the kernel option, and changes nothing.
#[track_caller]
fn assert_vlans_refused(net: &Net, conf: &Value, ctr: &Netns) {
    let before = net.node.state();
    let out = net.plugin.add(conf, ctr, IFNAME);
    assert!(out.assert_code(100).error_text().contains("CONFIG_BRIDGE_VLAN_FILTERING"), "{out}");
    assert_eq!(net.node.state(), before, "a refused VLAN network changed the node:\n{out}");
    assert_eq!(ctr.link_names(), BTreeSet::from(["lo".to_string()]), "links left in the container:\n{out}");
    eprintln!("note: this kernel has no bridge VLAN filtering; checked the error instead");
}

// ---------------------------------------------------------------------------------------------
// Result shape.

fn result_shape(version: &str, reference: bool) {
    let extra = json!({"isGateway": true});
    let net = match reference {
        false => Net::new("shape", version, Family::Dual, 1, extra),
        true => Net::reference("shape", version, Family::Dual, 1, extra),
    };
    let Some(net) = net else { return };
    let ctr = net.node.container("c");
    let out = net.add(&ctr);
    let result = out.result();
    assert_eq!(result["cniVersion"], version, "{out}");
    let ifaces = result["interfaces"].as_array().unwrap_or_else(|| panic!("no interfaces:\n{out}"));
    assert_eq!(ifaces.len(), 3, "bridge, node end, container:\n{out}");
    assert_eq!(ifaces[0]["name"], net.bridge().as_str(), "{out}");
    for i in [0, 1] {
        assert!(ifaces[i]["sandbox"].as_str().is_none_or(str::is_empty), "node interface with a sandbox:\n{out}");
        let name = ifaces[i]["name"].as_str().unwrap();
        let link = net.node.link(name).unwrap_or_else(|| panic!("{name} not on the node"));
        assert_eq!(link["address"], ifaces[i]["mac"], "MAC of {name} differs from the result:\n{out}");
    }
    let port = net.node.link(ifaces[1]["name"].as_str().unwrap()).unwrap();
    assert_eq!(port["master"], net.bridge().as_str(), "the node end must be a port of the bridge");
    assert_eq!(ifaces[2]["name"], IFNAME);
    assert_eq!(ifaces[2]["sandbox"].as_str(), Some(ctr.path_str().as_str()), "{out}");
    let link = ctr.link(IFNAME).unwrap();
    assert_eq!(link["address"], ifaces[2]["mac"], "container MAC differs from the result:\n{out}");
    let ips = result["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2, "{out}");
    for ip in ips {
        assert_eq!(ip["interface"], 2, "ips point at the container interface:\n{out}");
        assert!(ip["gateway"].is_string(), "a gateway bridge reports the gateway:\n{out}");
        assert_eq!(ip.get("version").is_some(), has_ip_version(version), "{out}");
    }
    let have = ctr.global_addrs(IFNAME);
    for a in result_addresses(result) {
        assert!(have.contains(&a), "{a} not on {IFNAME}: {have:?}");
    }
    net.del(&ctr, Some(result)).assert_ok_silent();
}

fn tether_shape(v: &str) {
    result_shape(v, false)
}
version_tests!(tether_shape;
    result_shape_0_3_1 => "0.3.1",
    result_shape_0_4_0 => "0.4.0",
    result_shape_1_0_0 => "1.0.0",
    result_shape_1_1_0 => "1.1.0",
);

#[test]
fn reference_result_shape() {
    result_shape("1.0.0", true);
}

// ---------------------------------------------------------------------------------------------
// Gateway bridges and sealed bridges.

fn gateway_traffic(reference: bool, x: u8) {
    let extra = json!({"isDefaultGateway": true});
    let net = match reference {
        false => Net::new("gw", "1.0.0", Family::Dual, x, extra),
        true => Net::reference("gw", "1.0.0", Family::Dual, x, extra),
    };
    let Some(net) = net else { return };
    let (a, b) = (net.node.container("a"), net.node.container("b"));
    let (ra, rb) = (net.add_ok(&a), net.add_ok(&b));
    let br = net.bridge();
    let on_bridge = net.node.global_addrs(&br);
    for want in [format!("198.18.{x}.1/24"), format!("fd7e:7e7e:{x:x}::1/64")] {
        assert!(on_bridge.contains(&want), "gateway {want} not on {br}: {on_bridge:?}");
    }
    assert_eq!(net.node.sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(net.node.sysctl("net.ipv6.conf.all.forwarding"), "1");
    for v6 in [false, true] {
        let (addr_a, addr_b) = (first_addr(&ra, v6), first_addr(&rb, v6));
        let gw = if v6 { format!("fd7e:7e7e:{x:x}::1") } else { format!("198.18.{x}.1") };
        assert!(ping(&net, &net.node, &addr_a), "node -> {addr_a}");
        assert!(ping(&net, &a, &gw), "container -> gateway {gw}");
        assert!(ping(&net, &a, &addr_b), "container -> container {addr_b}");
        let default = if v6 { "::/0" } else { "0.0.0.0/0" };
        assert!(
            ra["routes"].as_array().unwrap().iter().any(|r| r["dst"] == default && r["gw"] == gw.as_str()),
            "isDefaultGateway: no {default} via {gw} in {ra}"
        );
        let far = if v6 { "fd7e:7e7e:fe::fe" } else { "198.18.254.254" };
        let r = a.route_get(far).unwrap_or_else(|| panic!("container has no route to {far}"));
        assert_eq!(r["gateway"], gw.as_str(), "{r}");
    }
    net.del(&a, Some(&ra)).assert_ok_silent();
    net.del(&b, Some(&rb)).assert_ok_silent();
    assert!(net.node.link(&br).is_some(), "DEL must not delete the bridge");
}

#[test]
fn gateway_bridge_routes_both_families() {
    gateway_traffic(false, 2);
}

#[test]
fn reference_gateway_bridge_routes_both_families() {
    gateway_traffic(true, 3);
}

#[test]
fn sealed_bridge_keeps_its_containers_to_themselves() {
    let Some(net) = Net::new("sealed", "1.1.0", Family::Dual, 4, json!({})) else { return };
    let (a, b) = (net.node.container("a"), net.node.container("b"));
    let (ra, rb) = (net.add_ok(&a), net.add_ok(&b));
    let br = net.bridge();
    // Containers reach each other on both families.
    for v6 in [false, true] {
        assert!(a.ping(&first_addr(&rb, v6)), "a -> b ({})", if v6 { "IPv6" } else { "IPv4" });
        assert!(b.ping(&first_addr(&ra, v6)), "b -> a");
    }
    // No address of the node on the segment, link-local included, on the bridge or any port.
    for dev in [br.clone(), host_veth(&ra), host_veth(&rb)] {
        let addrs = net.node.ip_json(&["addr", "show", "dev", &dev]);
        let infos = addrs[0]["addr_info"].as_array().cloned().unwrap_or_default();
        assert!(infos.is_empty(), "{dev} carries addresses: {addrs}");
        assert_eq!(net.node.link(&dev).unwrap()["inet6_addr_gen_mode"], "none", "{dev}");
    }
    // A port has no IPv6 of its own at all (the bridge carries the node's, when it is a gateway).
    for port in [host_veth(&ra), host_veth(&rb)] {
        assert_eq!(net.node.sysctl(&format!("net.ipv6.conf.{port}.disable_ipv6")), "1", "{port}");
    }
    let lls = net.node.link_local_addrs();
    for ll in &lls {
        assert!(!ping_link_local(&a, ll), "container reaches the node's link-local {ll}");
    }
    // The node has no route to the segment and reaches no container; containers have only
    // their on-link subnet routes.
    for v6 in [false, true] {
        let addr = first_addr(&ra, v6);
        assert!(net.node.route_get(&addr).is_none(), "the node has a route to {addr}");
        assert!(!net.node.ping(&addr), "the node reaches {addr}");
    }
    assert!(a.route_get("198.18.254.254").is_none(), "a container has a route off its subnet");
    assert!(a.route_get("fd7e:7e7e:fe::fe").is_none(), "a container has an IPv6 route off its subnet");
    assert_eq!(a.routes(4).len(), 1, "only the on-link subnet route: {:?}", a.routes(4));
    assert_eq!(net.node.sysctl(&format!("net.ipv6.conf.{br}.accept_ra")), "0");
    net.del(&a, Some(&ra)).assert_ok_silent();
    net.del(&b, Some(&rb)).assert_ok_silent();
}

#[test]
fn reference_sealed_bridge_leaves_a_link_local_address() {
    // The oracle for the test above: the reference's "isolated" bridge keeps a link-local
    // address, and its containers reach the node through it.
    let Some(net) = Net::reference("refsealed", "1.0.0", Family::Dual, 5, json!({})) else { return };
    let a = net.node.container("a");
    let ra = net.add_ok(&a);
    let br = net.bridge();
    let has_ll = || net.node.ip_json(&["-6", "addr", "show", "dev", &br]).to_string().contains("fe80");
    assert!(eventually(has_ll), "the reference bridge has no link-local address");
    let reached = eventually(|| net.node.link_local_addrs().iter().any(|ll| ping_link_local(&a, ll)));
    assert!(reached, "with the reference, a container reaches the node's link-local address");
    net.del(&a, Some(&ra)).assert_ok_silent();
}

// ---------------------------------------------------------------------------------------------
// Options.

#[test]
fn mtu_hairpin_promisc_and_isolated_ports() {
    let extra = json!({"isGateway": true, "mtu": 1400, "hairpinMode": true, "portIsolation": true});
    let Some(net) = Net::new("opts", "1.1.0", Family::V4, 6, extra) else { return };
    let (a, b) = (net.node.container("a"), net.node.container("b"));
    let (ra, rb) = (net.add_ok(&a), net.add_ok(&b));
    let br = net.bridge();
    assert_eq!(net.node.link(&br).unwrap()["mtu"], 1400, "bridge created with the MTU");
    assert_eq!(net.node.link(&host_veth(&ra)).unwrap()["mtu"], 1400);
    assert_eq!(a.link(IFNAME).unwrap()["mtu"], 1400);
    assert_eq!(ra["interfaces"][2]["mtu"], 1400);
    let port = slave_data(&net.node, &host_veth(&ra));
    assert_eq!((port["hairpin"].as_bool(), port["isolated"].as_bool()), (Some(true), Some(true)), "{port}");
    // Isolated ports: the containers reach the gateway but not each other.
    assert!(a.ping("198.18.6.1"), "isolated port -> gateway");
    assert!(!a.ping(&first_addr(&rb, false)), "isolated ports must not reach each other");
    let flags = net.node.link(&br).unwrap()["flags"].to_string();
    assert!(!flags.contains("PROMISC"), "promiscMode is off: {flags}");
    net.del(&a, Some(&ra)).assert_ok_silent();
    net.del(&b, Some(&rb)).assert_ok_silent();

    let Some(net) = Net::new("promisc", "1.1.0", Family::V4, 7, json!({"promiscMode": true})) else { return };
    let c = net.node.container("c");
    let rc = net.add_ok(&c);
    let flags = net.node.link(&net.bridge()).unwrap()["flags"].to_string();
    assert!(flags.contains("PROMISC"), "promiscMode: {flags}");
    let port = slave_data(&net.node, &host_veth(&rc));
    assert_eq!((port["hairpin"].as_bool(), port["isolated"].as_bool()), (Some(false), Some(false)), "{port}");
    net.del(&c, Some(&rc)).assert_ok_silent();
}

#[test]
fn mac_from_runtime_config_args_or_cni_args_in_that_order() {
    let Some(mut net) = Net::new("mac", "1.1.0", Family::V4, 8, json!({})) else { return };
    let mac_of = |ctr: &Netns| ctr.link(IFNAME).unwrap()["address"].as_str().unwrap().to_string();
    let cni_args = "IgnoreUnknown=1;MAC=02:7e:00:00:00:03";
    let add = |net: &Net, ctr: &Netns| {
        let inv = Invocation::attachment("ADD", ctr, IFNAME).with_args(cni_args);
        net.plugin.invoke(&inv, &net.conf).result().clone()
    };
    let c = net.node.container("c");
    let r = add(&net, &c);
    assert_eq!(mac_of(&c), "02:7e:00:00:00:03", "CNI_ARGS MAC");
    assert_eq!(r["interfaces"][2]["mac"], "02:7e:00:00:00:03");
    net.del(&c, Some(&r)).assert_ok_silent();
    net.conf["args"] = json!({"cni": {"mac": "02:7e:00:00:00:02"}});
    let r = add(&net, &c);
    assert_eq!(mac_of(&c), "02:7e:00:00:00:02", "args.cni.mac wins over CNI_ARGS");
    net.del(&c, Some(&r)).assert_ok_silent();
    net.conf["runtimeConfig"] = json!({"mac": "02:7e:00:00:00:01"});
    let r = add(&net, &c);
    assert_eq!(mac_of(&c), "02:7e:00:00:00:01", "runtimeConfig.mac wins");
    net.del(&c, Some(&r)).assert_ok_silent();
    net.conf["runtimeConfig"] = json!({"mac": "01:00:5e:00:00:01"});
    let out = net.add(&c);
    assert!(out.assert_code(7).error_text().contains("unicast"), "{out}");
}

#[test]
fn spoof_check_drops_frames_from_another_mac_and_leaves_with_the_container() {
    let Some(net) = Net::new("spoof", "1.1.0", Family::V4, 9, json!({"macspoofchk": true})) else { return };
    let (a, b) = (net.node.container("a"), net.node.container("b"));
    let (ra, rb) = (net.add_ok(&a), net.add_ok(&b));
    let mac = ra["interfaces"][2]["mac"].as_str().unwrap().to_string();
    let text = net.node.nft_text();
    assert!(text.contains(&host_veth(&ra)) && text.contains(&mac), "no spoof-check state for {mac}:\n{text}");
    let b_addr = first_addr(&rb, false);
    assert!(a.ping(&b_addr), "a -> b with its own MAC");
    a.ip_ok(&["link", "set", IFNAME, "address", "02:7e:de:ad:be:ef"]);
    assert!(!a.ping(&b_addr), "a -> b with a spoofed MAC must be dropped");
    // CHECK sees the MAC drift; DEL without the netns still removes the state.
    net.check(&a, &ra).assert_error();
    net.plugin.del_without_netns(&with_prev(&net.conf, &ra), a.name(), IFNAME).assert_ok_silent();
    let text = net.node.nft_text();
    assert!(!text.contains(&host_veth(&ra)) && !text.contains(&mac), "spoof-check state left after DEL:\n{text}");
    assert!(text.contains(&host_veth(&rb)), "the other container's state must stay:\n{text}");
    net.del(&b, Some(&rb)).assert_ok_silent();
}

#[test]
fn enabledad_lets_dad_run_and_waits_for_it() {
    let Some(net) = Net::new("dad", "1.1.0", Family::V6, 10, json!({"enabledad": true})) else { return };
    let c = net.node.container("c");
    let r = net.add_ok(&c);
    let text = c.ip_ok(&["-6", "addr", "show", "dev", IFNAME]);
    let line = text.lines().find(|l| l.contains("fd7e:7e7e:a::")).unwrap_or_else(|| panic!("{text}"));
    assert!(!line.contains("nodad") && !line.contains("tentative"), "DAD ran and finished: {text}");
    net.del(&c, Some(&r)).assert_ok_silent();

    let Some(net) = Net::new("nodad", "1.1.0", Family::V6, 11, json!({})) else { return };
    let c = net.node.container("c");
    let r = net.add_ok(&c);
    let text = c.ip_ok(&["-6", "addr", "show", "dev", IFNAME]);
    let line = text.lines().find(|l| l.contains("fd7e:7e7e:b::")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("nodad"), "DAD is off by default: {text}");
    net.del(&c, Some(&r)).assert_ok_silent();
}

#[test]
fn a_layer_two_network_in_a_version_that_carries_only_addresses_is_refused_before_anything_changes() {
    // Found by fuzzing (netconf target): the ADD wired the container, then its 0.2.0 result could
    // not be written (0.1.0/0.2.0 results are addresses only) and the answer was code 999 with the
    // veth pair left behind.
    let Some(net) = Net::new("l2old", "0.2.0", Family::V4, 14, json!({"ipam": {}})) else { return };
    let ctr = net.node.container("c");
    let before = net.node.state();
    let out = net.add(&ctr);
    assert!(out.assert_code(1).error_text().contains("0.2.0"), "{out}");
    assert_eq!(net.node.state(), before, "the refused ADD changed the node");
    assert!(ctr.link(IFNAME).is_none(), "the refused ADD left {IFNAME} in the container");
}

#[test]
fn pure_layer_two_and_disabled_container_interface() {
    let Some(net) = Net::new("l2", "1.1.0", Family::V4, 12, json!({"ipam": {}})) else { return };
    let (a, b) = (net.node.container("a"), net.node.container("b"));
    let (ra, rb) = (net.add_ok(&a), net.add_ok(&b));
    assert!(ra.get("ips").is_none_or(|i| i.as_array().is_some_and(Vec::is_empty)), "no addresses: {ra}");
    assert_eq!(ra["interfaces"].as_array().unwrap().len(), 3);
    assert!(a.link(IFNAME).unwrap()["flags"].to_string().contains("\"UP\""), "L2 interface is up");
    // The segment works at layer 2: addresses the containers pick themselves reach each other.
    a.ip_ok(&["addr", "add", "198.18.12.10/24", "dev", IFNAME]);
    b.ip_ok(&["addr", "add", "198.18.12.11/24", "dev", IFNAME]);
    assert!(a.ping("198.18.12.11"), "L2 segment");
    net.check(&a, &ra).assert_ok_silent();
    net.plugin.status(&net.conf).assert_ok_silent();
    net.del(&a, Some(&ra)).assert_ok_silent();
    net.del(&b, Some(&rb)).assert_ok_silent();
    assert!(net.node.reservations().is_empty());

    let Some(mut net) = Net::new("noif", "1.1.0", Family::V4, 13, json!({"disableContainerInterface": true})) else {
        return;
    };
    let c = net.node.container("c");
    let before = net.node.state();
    let out = net.add(&c);
    let text = out.assert_code(7).error_text();
    assert!(text.contains("disableContainerInterface") && text.contains("IPAM"), "{out}");
    assert_eq!(net.node.state(), before, "a refused configuration changed the node");
    net.conf["ipam"] = json!({});
    let r = net.add_ok(&c);
    assert!(!c.link(IFNAME).unwrap()["flags"].to_string().contains("\"UP\""), "interface must stay down");
    net.del(&c, Some(&r)).assert_ok_silent();
}

#[test]
fn force_address_replaces_a_conflicting_bridge_address() {
    let Some(mut net) = Net::new("force", "1.1.0", Family::V4, 14, json!({"isGateway": true})) else { return };
    let br = net.bridge();
    net.node.ip_ok(&["link", "add", &br, "type", "bridge"]);
    net.node.ip_ok(&["addr", "add", "198.18.14.99/24", "dev", &br]);
    let c = net.node.container("c");
    let out = net.add(&c);
    let text = out.assert_code(7).error_text();
    assert!(text.contains("already has an IP address different from 198.18.14.1/24"), "{out}");
    assert!(net.node.reservations().is_empty(), "reservation left by the failed ADD");
    assert_eq!(c.link_names(), BTreeSet::from(["lo".to_string()]), "links left in the container");
    assert_eq!(net.node.global_addrs(&br), vec!["198.18.14.99/24".to_string()]);
    net.conf["forceAddress"] = json!(true);
    let r = net.add_ok(&c);
    assert_eq!(net.node.global_addrs(&br), vec!["198.18.14.1/24".to_string()], "forceAddress replaces it");
    assert!(c.ping("198.18.14.1"));
    net.del(&c, Some(&r)).assert_ok_silent();
}

// ---------------------------------------------------------------------------------------------
// VLANs. Each test probes the kernel (bridge VLAN filtering) in its node: without it, the
// VLAN network must fail with the error that names the kernel option and leave nothing; with it,
// the success path runs (and under scripts/kernel-test, whose kernels have it, must run).

#[test]
fn a_vlan_network_has_its_gateway_on_bridge_dot_vlan() {
    let extra = json!({"isGateway": true, "vlan": 42, "vlanTrunk": [{"minID": 100, "maxID": 101}, {"id": 300}]});
    let Some(net) = Net::new("vlan", "1.1.0", Family::Dual, 15, extra) else { return };
    let (a, b) = (net.node.container("a"), net.node.container("b"));
    if !kernel::bridge_vlan_filtering(&net.node) {
        return assert_vlans_refused(&net, &net.conf, &a);
    }
    let (ra, rb) = (net.add_ok(&a), net.add_ok(&b));
    let (br, gw_if) = (net.bridge(), format!("{}.42", net.bridge()));
    let info = net.node.link(&br).unwrap()["linkinfo"]["info_data"].clone();
    assert_eq!(info["vlan_filtering"], 1, "{br}: {info}");
    for r in [&ra, &rb] {
        let want = [(42, true, true), (100, false, false), (101, false, false), (300, false, false)];
        assert_eq!(port_vlans(&net.node, &host_veth(r)), want, "vlan untagged, vlanTrunk tagged, VLAN 1 gone");
    }
    // The gateway is `<bridge>.<vlan>`: in the result, with the gateway addresses; the bridge has none.
    assert_eq!(ra["interfaces"][3]["name"], gw_if.as_str(), "{ra}");
    let gw_link = net.node.link(&gw_if).unwrap_or_else(|| panic!("{gw_if} is not on the node"));
    assert_eq!(ra["interfaces"][3]["mac"], gw_link["address"], "{ra}");
    let mut on_gw = net.node.global_addrs(&gw_if);
    on_gw.sort();
    assert_eq!(on_gw, ["198.18.15.1/24", "fd7e:7e7e:f::1/64"], "gateway addresses on {gw_if}");
    assert!(net.node.global_addrs(&br).is_empty(), "{br} carries {:?}", net.node.global_addrs(&br));
    let gw_port = net.node.link_names().into_iter().find(|n| n.starts_with("tgw")).expect("the gateway's bridge port");
    assert_eq!(port_vlans(&net.node, &gw_port), [(42, true, true)], "{gw_port}: VLAN 42 only, untagged");
    // Traffic in VLAN 42, both families.
    for v6 in [false, true] {
        let gw = if v6 { "fd7e:7e7e:f::1" } else { "198.18.15.1" };
        let (addr_a, addr_b) = (first_addr(&ra, v6), first_addr(&rb, v6));
        assert!(a.ping(&addr_b), "a -> b ({addr_b}) in VLAN 42");
        assert!(a.ping(gw), "a -> its gateway {gw} on {gw_if}");
        assert!(net.node.ping(&addr_a), "node -> a ({addr_a})");
        let route = net.node.route_get(&addr_a).unwrap_or_else(|| panic!("the node has no route to {addr_a}"));
        assert_eq!(route["dev"], gw_if.as_str(), "the node reaches the VLAN through {gw_if}: {route}");
    }
    // CHECK passes, then names the gateway address that left `<bridge>.<vlan>`.
    net.check(&a, &ra).assert_ok_silent();
    net.node.ip_ok(&["addr", "del", "198.18.15.1/24", "dev", &gw_if]);
    let out = net.check(&a, &ra);
    let text = out.assert_code(105).error_text();
    assert!(text.contains("198.18.15.1/24") && text.contains(&gw_if), "{out}");
    net.node.ip_ok(&["addr", "add", "198.18.15.1/24", "dev", &gw_if]);
    net.check(&a, &ra).assert_ok_silent();
    // DEL takes a's port; the gateway, shared, stays for b; a second DEL changes nothing.
    let port_a = host_veth(&ra);
    net.del(&a, Some(&ra)).assert_ok_silent();
    assert!(net.node.link(&port_a).is_none() && a.link(IFNAME).is_none(), "a's veth left after DEL");
    assert!(b.ping("198.18.15.1"), "b lost its gateway when a left");
    net.del(&a, Some(&ra)).assert_ok_silent();
    net.check(&b, &rb).assert_ok_silent();
    net.del(&b, Some(&rb)).assert_ok_silent();
    assert!(net.node.reservations().is_empty(), "reservations left: {:?}", net.node.reservations());
    let stay = BTreeSet::from(["lo".to_string(), br, gw_if, gw_port]);
    assert_eq!(net.node.link_names(), stay, "only the bridge and the VLAN gateway stay");
}

#[test]
fn vlan_gateway_on_bridge_dot_vlan_like_the_reference() {
    // The oracle for the design above: the reference `bridge` also puts the gateway on a veth
    // `<bridge>.<vlan>` whose peer is a port of the bridge in the VLAN, untagged. (Not named
    // reference_*: scripts/kernel-test skips those, and this one needs a kernel with VLANs.)
    let extra = json!({"isGateway": true, "vlan": 42});
    let Some(net) = Net::reference("refvlan", "1.0.0", Family::V4, 26, extra) else { return };
    let (a, b) = (net.node.container("a"), net.node.container("b"));
    if !kernel::bridge_vlan_filtering(&net.node) {
        net.add(&a).assert_error();
        return;
    }
    let (ra, rb) = (net.add_ok(&a), net.add_ok(&b));
    let gw_if = format!("{}.42", net.bridge());
    let gw_link = net.node.link(&gw_if).unwrap_or_else(|| panic!("the reference made no {gw_if}"));
    assert_eq!(gw_link["linkinfo"]["info_kind"], "veth", "{gw_link}");
    assert_eq!(net.node.global_addrs(&gw_if), ["198.18.26.1/24"]);
    assert!(port_vlans(&net.node, &host_veth(&ra)).contains(&(42, true, true)), "VLAN 42 untagged on the port");
    assert!(ping(&net, &a, &first_addr(&rb, false)) && ping(&net, &a, "198.18.26.1"), "VLAN 42 with its gateway");
    net.del(&a, Some(&ra)).assert_ok_silent();
    net.del(&b, Some(&rb)).assert_ok_silent();
}

#[test]
fn vlans_separate_containers_on_one_bridge_and_trunks_carry_them() {
    // Three networks on one bridge, one subnet, no gateway: VLAN 100 (.10-.19), VLAN 200
    // (.20-.29), and a trunk of 100 and 200-201 without IPAM. Only the VLANs separate them.
    let range = |lo: u8, hi: u8| json!([[{"subnet": "198.18.24.0/24", "rangeStart": format!("198.18.24.{lo}"), "rangeEnd": format!("198.18.24.{hi}")}]]);
    let Some(mut net) = Net::new("vlansep", "1.1.0", Family::V4, 24, json!({"vlan": 100})) else { return };
    let data_dir = json!(net.node.data_dir().display().to_string());
    net.conf["ipam"] = json!({"type": "tether-ipam", "dataDir": data_dir, "ranges": range(10, 19)});
    let mut v200 = net.conf.clone();
    v200["name"] = json!("tb24b");
    v200["vlan"] = json!(200);
    v200["ipam"]["ranges"] = range(20, 29);
    let mut trunk = net.conf.clone();
    trunk["name"] = json!("tb24t");
    trunk.as_object_mut().unwrap().remove("vlan");
    trunk["vlanTrunk"] = json!([{"id": 100}, {"minID": 200, "maxID": 201}]);
    trunk["ipam"] = json!({});
    let (a1, a2, b1, t) =
        (net.node.container("a1"), net.node.container("a2"), net.node.container("b1"), net.node.container("t"));
    if !kernel::bridge_vlan_filtering(&net.node) {
        return assert_vlans_refused(&net, &trunk, &t);
    }
    let (r1, r2) = (net.add_ok(&a1), net.add_ok(&a2));
    let rb = net.plugin.add(&v200, &b1, IFNAME).result().clone();
    let (x1, x2, xb) = (first_addr(&r1, false), first_addr(&r2, false), first_addr(&rb, false));
    assert_eq!(port_vlans(&net.node, &host_veth(&r1)), [(100, true, true)]);
    assert_eq!(port_vlans(&net.node, &host_veth(&rb)), [(200, true, true)]);
    assert!(a1.ping(&x2) && a2.ping(&x1), "a1 <-> a2 in VLAN 100");
    assert!(!a1.ping(&xb) && !b1.ping(&x1), "VLAN 100 and VLAN 200 reach each other on {}", net.bridge());
    let rt = net.plugin.add(&trunk, &t, IFNAME).result().clone();
    let want = [(1, true, true), (100, false, false), (200, false, false), (201, false, false)];
    assert_eq!(port_vlans(&net.node, &host_veth(&rt)), want, "native VLAN 1, vlanTrunk ids and ranges tagged");
    // Frames tagged in the trunk container reach their VLAN and no other: a VLAN device per VLAN on
    // its eth0, each moved into a namespace of its own, in the same subnet.
    if kernel::vlan_devices(&t) {
        let (t100, t200) = (net.node.container("t100"), net.node.container("t200"));
        for (vid, ns, addr) in [("100", &t100, "198.18.24.100/24"), ("200", &t200, "198.18.24.200/24")] {
            let dev = format!("v{vid}");
            t.ip_ok(&["link", "add", "link", IFNAME, "name", &dev, "type", "vlan", "id", vid]);
            t.ip_ok(&["link", "set", &dev, "netns", ns.name()]);
            ns.ip_ok(&["addr", "add", addr, "dev", &dev]);
            ns.ip_ok(&["link", "set", &dev, "up"]);
        }
        assert!(t100.ping(&x1) && t100.ping(&x2), "tagged VLAN 100 through the trunk -> VLAN 100");
        assert!(!t100.ping(&xb), "tagged VLAN 100 through the trunk reaches VLAN 200");
        assert!(t200.ping(&xb), "tagged VLAN 200 (a trunk range) through the trunk -> VLAN 200");
        assert!(!t200.ping(&x1), "tagged VLAN 200 through the trunk reaches VLAN 100");
    } else {
        gate::skip_or_fail("802.1Q VLAN devices (CONFIG_VLAN_8021Q) for the tagged traffic through the trunk");
    }
    for (conf, ctr, r) in [(&net.conf, &a1, &r1), (&net.conf, &a2, &r2), (&v200, &b1, &rb), (&trunk, &t, &rt)] {
        net.plugin.check(&with_prev(conf, r), ctr, IFNAME).assert_ok_silent();
    }
    for (conf, ctr, r) in [(&net.conf, &a1, &r1), (&net.conf, &a2, &r2), (&v200, &b1, &rb), (&trunk, &t, &rt)] {
        net.plugin.del(&with_prev(conf, r), ctr, IFNAME).assert_ok_silent();
        assert!(ctr.link(IFNAME).is_none(), "{IFNAME} left in {}", ctr.name());
    }
    assert!(net.node.reservations().is_empty(), "reservations left: {:?}", net.node.reservations());
    assert_eq!(net.node.link_names(), BTreeSet::from(["lo".to_string(), net.bridge()]), "only the bridge stays");
}

#[test]
fn preserve_default_vlan_keeps_vlan_1_on_the_port() {
    let extra = json!({"vlan": 300, "preserveDefaultVlan": true});
    let Some(net) = Net::new("keepvlan", "1.1.0", Family::V4, 25, extra) else { return };
    let (p, q) = (net.node.container("p"), net.node.container("q"));
    if !kernel::bridge_vlan_filtering(&net.node) {
        return assert_vlans_refused(&net, &net.conf, &p);
    }
    let rp = net.add_ok(&p);
    let mut dropping = net.conf.clone();
    dropping["preserveDefaultVlan"] = json!(false);
    let rq = net.plugin.add(&dropping, &q, IFNAME).result().clone();
    let kept = port_vlans(&net.node, &host_veth(&rp));
    assert_eq!(kept, [(1, false, true), (300, true, true)], "VLAN 1 kept, no longer the PVID");
    assert_eq!(port_vlans(&net.node, &host_veth(&rq)), [(300, true, true)], "without it, VLAN 1 goes");
    assert!(p.ping(&first_addr(&rq, false)) && q.ping(&first_addr(&rp, false)), "p <-> q in VLAN 300");
    net.check(&p, &rp).assert_ok_silent();
    net.plugin.check(&with_prev(&dropping, &rq), &q, IFNAME).assert_ok_silent();
    net.del(&p, Some(&rp)).assert_ok_silent();
    net.plugin.del(&with_prev(&dropping, &rq), &q, IFNAME).assert_ok_silent();
    assert!(net.node.reservations().is_empty(), "reservations left: {:?}", net.node.reservations());
}

#[test]
fn conflicting_options_are_refused_before_anything_changes() {
    let Some(net) = Net::new("conflict", "1.1.0", Family::V4, 16, json!({})) else { return };
    let c = net.node.container("c");
    let before = net.node.state();
    let cases = [
        (json!({"hairpinMode": true, "promiscMode": true}), vec!["hairpinMode", "promiscMode"]),
        (json!({"vlan": 4095}), vec!["vlan 4095"]),
        (json!({"vlanTrunk": [{"minID": 10, "maxID": 5}]}), vec!["minID", "maxID"]),
        (json!({"vlanTrunk": [{"id": 0}]}), vec!["id 0"]),
        (json!({"bridge": "a-bridge-name-too-long"}), vec!["bridge", "15 bytes"]),
        (json!({"bridge": "tbr-sixteen", "isGateway": true, "vlan": 4094}), vec!["<bridge>.<vlan>", "15 bytes"]),
        (json!({"mtu": 20}), vec!["mtu 20"]),
    ];
    for (extra, words) in cases {
        let mut conf = net.conf.clone();
        for (k, v) in extra.as_object().unwrap() {
            conf[k] = v.clone();
        }
        let out = net.plugin.add(&conf, &c, IFNAME);
        let text = out.assert_code(7).error_text();
        for w in words {
            assert!(text.contains(w), "error must name {w:?}:\n{out}");
        }
        assert_eq!(net.node.state(), before, "a refused configuration changed the node:\n{out}");
    }
    let _ = net.del(&c, None);
}

#[test]
fn an_existing_device_that_is_not_a_bridge_is_an_error() {
    let Some(net) = Net::new("notbr", "1.1.0", Family::V4, 17, json!({})) else { return };
    let br = net.bridge();
    net.node.ip_ok(&["link", "add", &br, "type", "veth", "peer", "name", "tnbpeer"]);
    let before = net.node.state();
    let c = net.node.container("c");
    let out = net.add(&c);
    let text = out.assert_code(100).error_text();
    assert!(text.contains("not a bridge"), "{out}");
    assert_eq!(net.node.state(), before, "failed ADD changed the node:\n{out}");
    assert_eq!(c.link_names(), BTreeSet::from(["lo".to_string()]));
}

// ---------------------------------------------------------------------------------------------
// Concurrency, rollback, DEL, CHECK, GC, STATUS.

#[test]
fn thirty_two_parallel_adds_share_one_new_bridge() {
    let extra = json!({"isGateway": true, "ipMasq": true, "macspoofchk": true});
    let Some(net) = Net::new("par", "1.1.0", Family::Dual, 18, extra) else { return };
    let baseline = net.node.state();
    let ctrs: Vec<Netns> = (0..32).map(|i| net.node.container(&format!("p{i}"))).collect();
    let net = &net;
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs.iter().map(|c| s.spawn(move || net.add(c))).collect();
        handles.into_iter().map(|h| h.join().unwrap().result().clone()).collect()
    });
    let bridges = net.node.ip_json(&["link", "show", "type", "bridge"]);
    assert_eq!(bridges.as_array().unwrap().len(), 1, "one bridge: {bridges}");
    let mut seen = BTreeSet::new();
    for r in &results {
        for a in result_addresses(r) {
            assert!(seen.insert(a.clone()), "{a} handed out twice");
        }
    }
    assert_eq!(seen.len(), 64);
    assert_eq!(net.node.global_addrs(&net.bridge()).len(), 2, "the gateway addresses, once each");
    std::thread::scope(|s| {
        for (c, r) in ctrs.iter().zip(&results) {
            s.spawn(move || {
                assert!(c.ping("198.18.18.1") && c.ping("fd7e:7e7e:12::1"), "{} -> gateway", c.name());
                assert!(net.node.ping(&first_addr(r, false)), "node -> {}", c.name());
            });
        }
    });
    std::thread::scope(|s| {
        let handles: Vec<_> = ctrs.iter().zip(&results).map(|(c, r)| s.spawn(move || net.del(c, Some(r)))).collect();
        for h in handles {
            h.join().unwrap().assert_ok_silent();
        }
    });
    let after = net.node.state();
    assert_eq!(after.reservations, baseline.reservations, "reservations left");
    assert_eq!(after.links.len(), baseline.links.len() + 1, "only the bridge stays: {:?}", after.links);
    let text = net.node.nft_text();
    for r in &results {
        assert!(!text.contains(&host_veth(r)), "spoof-check state left for {}", host_veth(r));
        assert!(!text.contains(&format!("{} ", first_addr(r, false))), "masquerade state left");
    }
}

#[test]
fn rollback_when_ipam_is_exhausted_or_the_ifname_exists() {
    let extra = json!({"isGateway": true, "macspoofchk": true, "ipMasq": true,
        "ipam": {"type": "tether-ipam", "ranges": [[{"subnet": "198.18.19.0/30"}]]}});
    let Some(mut net) = Net::new("rollback", "1.1.0", Family::V4, 19, extra) else { return };
    net.conf["ipam"]["dataDir"] = json!(net.node.data_dir().display().to_string());
    let first = net.node.container("a");
    let r1 = net.add_ok(&first);
    let before = net.node.state();
    let nft_before = net.node.nft_text();

    // IPAM exhausted.
    let second = net.node.container("b");
    net.add(&second).assert_error();
    assert_eq!(net.node.state(), before, "exhausted: state left on the node");
    assert_eq!(net.node.nft_text(), nft_before, "exhausted: nftables state left");
    assert_eq!(second.link_names(), BTreeSet::from(["lo".to_string()]));

    // The interface name is taken in the container: the existing one is untouched, the
    // reservation released.
    net.del(&first, Some(&r1)).assert_ok_silent();
    let third = net.node.container("c");
    third.ip_ok(&["link", "add", IFNAME, "type", "veth", "peer", "name", "ttpeer"]);
    let existing = third.link(IFNAME).unwrap();
    let before = net.node.state();
    let out = net.add(&third);
    assert!(out.assert_error() != 0 && out.error_text().contains("already exists"), "{out}");
    assert_eq!(third.link(IFNAME).unwrap()["ifindex"], existing["ifindex"], "the existing {IFNAME} was replaced");
    assert_eq!(net.node.state(), before, "ifname exists: state left on the node:\n{out}");
    third.ip_ok(&["link", "del", IFNAME]);
    let r3 = net.add_ok(&third);
    assert_eq!(result_addresses(&r3), vec!["198.18.19.2/30".to_string()], "the address was released");
    assert!(third.ping("198.18.19.1"));
    net.del(&third, Some(&r3)).assert_ok_silent();
}

#[test]
fn del_is_complete_without_netns_or_prev_result_and_idempotent() {
    let extra = json!({"isGateway": true, "ipMasq": true, "macspoofchk": true});
    let Some(net) = Net::new("del", "1.1.0", Family::Dual, 20, extra) else { return };
    let warm = net.node.container("w");
    let rw = net.add_ok(&warm); // the bridge and the tables exist from here on
    let baseline = net.node.state();
    let nft_baseline = net.node.nft_text();

    let a = net.node.container("a");
    let ra = net.add_ok(&a);
    net.del(&a, None).assert_ok_silent();
    assert_eq!(net.node.state(), baseline, "DEL without prevResult left state");
    net.del(&a, None).assert_ok_silent();

    let b = net.node.container("b");
    let rb = net.add_ok(&b);
    net.plugin.del_without_netns(&net.conf, b.name(), IFNAME).assert_ok_silent();
    let state = net.node.state();
    assert_eq!(state, baseline, "DEL without netns: the node end, reservation must go");
    assert_eq!(net.node.nft_text(), nft_baseline, "DEL without netns: nftables state must go");
    net.plugin.del_without_netns(&net.conf, b.name(), IFNAME).assert_ok_silent();

    let c = net.node.container("c");
    let rc = net.add_ok(&c);
    let (id, path) = (c.name().to_string(), c.path_str());
    drop(c);
    let inv = Invocation {
        command: Some("DEL".into()),
        container_id: Some(id),
        netns: Some(path),
        ifname: Some(IFNAME.into()),
        ..Default::default()
    };
    net.plugin.invoke(&inv, &with_prev(&net.conf, &rc)).assert_ok_silent();
    assert!(eventually(|| net.node.state() == baseline), "DEL of a deleted namespace left state");

    let never = net.node.container("n");
    net.del(&never, None).assert_ok_silent();
    assert_eq!(net.node.state(), baseline);
    let _ = (ra, rb);
    net.del(&warm, Some(&rw)).assert_ok_silent();
}

#[test]
fn check_passes_then_names_what_drifted() {
    let extra = json!({"isGateway": true, "macspoofchk": true, "ipMasq": true});
    let Some(net) = Net::new("check", "1.1.0", Family::Dual, 21, extra) else { return };
    let c = net.node.container("c");
    let r = net.add_ok(&c);
    net.check(&c, &r).assert_ok_silent();
    let port = host_veth(&r);

    // The port left the bridge.
    net.node.ip_ok(&["link", "set", &port, "nomaster"]);
    let out = net.check(&c, &r);
    assert!(out.assert_code(105).error_text().contains("not a port of"), "{out}");
    net.node.ip_ok(&["link", "set", &port, "master", &net.bridge()]);
    net.check(&c, &r).assert_ok_silent();

    // The gateway address is gone from the bridge.
    net.node.ip_ok(&["addr", "del", "198.18.21.1/24", "dev", &net.bridge()]);
    let out = net.check(&c, &r);
    assert!(out.assert_code(105).error_text().contains("198.18.21.1"), "{out}");
    net.node.ip_ok(&["addr", "add", "198.18.21.1/24", "dev", &net.bridge()]);

    // The bridge turned promiscuous.
    net.node.ip_ok(&["link", "set", &net.bridge(), "promisc", "on"]);
    let out = net.check(&c, &r);
    assert!(out.assert_code(105).error_text().contains("promiscuous"), "{out}");
    net.node.ip_ok(&["link", "set", &net.bridge(), "promisc", "off"]);

    // An address left the container.
    let v6 = result_addresses(&r).into_iter().find(|a| a.contains(':')).unwrap();
    c.ip_ok(&["addr", "del", &v6, "dev", IFNAME]);
    let out = net.check(&c, &r);
    assert!(out.assert_error() != 0 && out.error_text().contains(addr_of(&v6)), "{out}");
    net.del(&c, Some(&r)).assert_ok_silent();

    // A sealed bridge that got an address.
    let Some(net) = Net::new("checksealed", "1.1.0", Family::V4, 22, json!({})) else { return };
    let c = net.node.container("c");
    let r = net.add_ok(&c);
    net.check(&c, &r).assert_ok_silent();
    net.node.ip_ok(&["addr", "add", "198.18.22.1/24", "dev", &net.bridge()]);
    let out = net.check(&c, &r);
    assert!(out.assert_code(105).error_text().contains("sealed bridge"), "{out}");
    net.del(&c, Some(&r)).assert_ok_silent();
}

#[test]
fn gc_releases_stale_attachments_and_status_answers() {
    let extra = json!({"isGateway": true, "ipMasq": true, "macspoofchk": true});
    let Some(net) = Net::new("gc", "1.1.0", Family::V4, 23, extra) else { return };
    let (keep, stale) = (net.node.container("keep"), net.node.container("stale"));
    let (rk, rs) = (net.add_ok(&keep), net.add_ok(&stale));
    net.plugin.status(&net.conf).assert_ok_silent();
    net.plugin.gc(&with_valid_attachments(&net.conf, &[(keep.name(), IFNAME)])).assert_ok_silent();
    let left = net.node.reservations();
    assert!(left.iter().any(|r| r.ends_with(&first_addr(&rk, false))), "GC released the valid one: {left:?}");
    assert!(!left.iter().any(|r| r.ends_with(&first_addr(&rs, false))), "GC kept the stale one: {left:?}");
    let text = net.node.nft_text();
    assert!(text.contains(&host_veth(&rk)), "GC removed the valid spoof-check state:\n{text}");
    assert!(!text.contains(&host_veth(&rs)), "GC kept the stale spoof-check state:\n{text}");
    assert!(net.node.link(&host_veth(&rs)).is_none(), "GC kept the bridge port of a stale, live attachment");
    assert!(stale.link(IFNAME).is_none(), "the stale container end went with its pair");
    assert!(net.node.link(&host_veth(&rk)).is_some(), "GC deleted the valid attachment's port");
    net.check(&keep, &rk).assert_ok_silent();
    net.del(&keep, Some(&rk)).assert_ok_silent();
    net.del(&stale, Some(&rs)).assert_ok_silent();
}

// ---------------------------------------------------------------------------------------------
// The scenario: examples/10-routed.conflist (cont1) and examples/20-isolated.conflist
// (cont2, cont3) on one node with an uplink to "outside".

fn example(name: &str, data_dir: &str) -> Value {
    let path = tether_tests::bins::repo_root().join("examples").join(name);
    let list: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut conf = list["plugins"][0].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    conf["ipam"]["dataDir"] = json!(data_dir);
    conf
}

#[test]
fn the_scenario_reachability_matrix() {
    if !require_root() || !require_tool("ping") || !require_tool("nft") {
        return;
    }
    let node = Node::new("scenario");
    let outside = Netns::new("outside");
    node.ip_ok(&["link", "add", "uplink", "type", "veth", "peer", "name", "wan", "netns", outside.name()]);
    node.ip_ok(&["addr", "add", "198.18.250.1/24", "dev", "uplink"]);
    node.ip_ok(&["addr", "add", "fd7e:7e7e:250::1/64", "dev", "uplink", "nodad"]);
    outside.ip_ok(&["addr", "add", "198.18.250.2/24", "dev", "wan"]);
    outside.ip_ok(&["addr", "add", "fd7e:7e7e:250::2/64", "dev", "wan", "nodad"]);
    node.ip_ok(&["link", "set", "uplink", "up"]);
    outside.ip_ok(&["link", "set", "wan", "up"]);
    // Setup, not an assertion: a fresh veth whose ends have the same index gets its carrier
    // applied by the kernel's link watch up to a second later.
    let uplink_ready = || node.ping("198.18.250.2") && node.ping("fd7e:7e7e:250::2");
    assert!(eventually(uplink_ready), "the test's uplink never came up");
    let dd = node.data_dir().display().to_string();
    let (routed, isolated) = (example("10-routed.conflist", &dd), example("20-isolated.conflist", &dd));
    let plugin = Plugin::tether(&node.ns);
    let (c1, c2, c3) = (node.container("c1"), node.container("c2"), node.container("c3"));
    let r1 = plugin.add(&routed, &c1, IFNAME).result().clone();
    let r2 = plugin.add(&isolated, &c2, IFNAME).result().clone();
    let r3 = plugin.add(&isolated, &c3, IFNAME).result().clone();

    for v6 in [false, true] {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let (a1, a2, a3) = (first_addr(&r1, v6), first_addr(&r2, v6), first_addr(&r3, v6));
        let gw1 = if v6 { "fd7e:7e7e:10::1" } else { "198.18.10.1" };
        let out = if v6 { "fd7e:7e7e:250::2" } else { "198.18.250.2" };
        let uplink = if v6 { "fd7e:7e7e:250::1" } else { "198.18.250.1" };
        assert!(c1.ping(gw1) && node.ping(&a1), "{fam}: cont1 <-> node");
        assert!(c1.ping(out), "{fam}: cont1 -> outside (masqueraded)");
        assert!(c2.ping(&a3) && c3.ping(&a2), "{fam}: cont2 <-> cont3");
        for (from, name) in [(&c2, "cont2"), (&c3, "cont3")] {
            for to in [gw1, uplink, out, a1.as_str()] {
                assert!(!from.ping(to), "{fam}: {name} must not reach {to}");
            }
        }
        assert!(!c1.ping(&a2) && !node.ping(&a2) && !outside.ping(&a2), "{fam}: nobody reaches cont2");
        assert!(node.route_get(&a2).is_none(), "{fam}: the node has a route to cont2");
    }
    let d = c1.route_get("198.18.254.254").unwrap();
    assert_eq!(d["gateway"], "198.18.10.1", "cont1's default route goes through the node: {d}");
    for ll in node.link_local_addrs() {
        assert!(!ping_link_local(&c2, &ll) && !ping_link_local(&c3, &ll), "a sealed container reaches {ll}");
    }
    plugin.del(&with_prev(&routed, &r1), &c1, IFNAME).assert_ok_silent();
    plugin.del(&with_prev(&isolated, &r2), &c2, IFNAME).assert_ok_silent();
    plugin.del(&with_prev(&isolated, &r3), &c3, IFNAME).assert_ok_silent();
}

// ---------------------------------------------------------------------------------------------
// The isolated network of the scenario, driven by a real runtime client: cnitool (libcni).

#[test]
fn cnitool_adds_checks_and_deletes_two_containers_on_the_isolated_bridge() {
    if !require_root() || !require_tool("ping") {
        return;
    }
    let Some(tool_path) = tether_tests::cnitool::require_cnitool() else { return };
    let node = Node::new("bridgetool");
    let path = tether_tests::bins::repo_root().join("examples").join("20-isolated.conflist");
    let mut conflist: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Debian's cnitool (libcni 1.1.2) speaks up to 1.0.0.
    conflist["cniVersion"] = json!("1.0.0");
    conflist["plugins"][0]["ipam"]["dataDir"] = json!(node.data_dir().display().to_string());
    let tool = tether_tests::cnitool::Cnitool::new(tool_path, &node.ns, &conflist);
    let (a, b) = (node.container("tool-a"), node.container("tool-b"));

    let ra = tool.add(&a, IFNAME);
    let rb = tool.add(&b, IFNAME);
    for r in [&ra, &rb] {
        assert_eq!(r["cniVersion"], "1.0.0", "{r}");
        assert_eq!(r["interfaces"].as_array().map(Vec::len), Some(3), "bridge, node end, container: {r}");
    }
    for v6 in [false, true] {
        let target = first_addr(&rb, v6);
        assert!(a.ping(&target), "container a cannot reach b at {target} on the isolated bridge");
    }
    assert!(node.route_get(&first_addr(&ra, false)).is_none(), "the node routes to the sealed segment");
    tool.run("check", &a, IFNAME).assert_success();
    tool.run("check", &b, IFNAME).assert_success();

    tool.run("del", &a, IFNAME).assert_success();
    tool.run("del", &b, IFNAME).assert_success();
    assert!(a.link(IFNAME).is_none() && b.link(IFNAME).is_none(), "eth0 left after cnitool del");
    assert!(node.reservations().is_empty(), "reservations left: {:?}", node.reservations());
    let links = node.link_names();
    assert!(links.iter().all(|l| !l.starts_with("veth")), "node ends left: {links:?}");
    tool.run("del", &a, IFNAME).assert_success();
}
