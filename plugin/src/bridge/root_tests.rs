//! Root tests of the bridge netlink work, each in a new empty network namespace: bridge creation
//! (and many at once, and a name taken by something else), ports enslaved at creation with their
//! options and VLANs, no IPv6 link-local address on a sealed segment, and the port-enabled wait.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::config::BridgeConf;
use super::plan::port_vlans;
use super::{device, port};
use crate::netlink::bridge::LinkUpdate;
use crate::netlink::link::{Link, VethSpec, PORT_DISABLED};
use crate::netlink::Netlink;
use crate::testns::{in_new_netns, json, link_locals, tool};
use std::time::{Duration, Instant};

const GROUP: u32 = 0x7e12_3456;

fn sealed(name: &str) -> BridgeConf {
    BridgeConf { name: name.to_string(), ..BridgeConf::default() }
}

/// A veth `name` / `name`p whose first end is a port of `master`, made as the plugin makes them.
async fn port_pair(nl: &Netlink, name: &str, master: u32) -> Link {
    let peer = format!("{name}p");
    let spec = VethSpec {
        host_name: name,
        peer_name: &peer,
        peer_netns_fd: None,
        mtu: None,
        peer_mac: None,
        host_master: Some(master),
        host_group: Some(GROUP),
    };
    nl.create_veth(&spec).await.unwrap();
    nl.link_by_name(name).await.unwrap().unwrap()
}

async fn set_up(nl: &Netlink, name: &str) {
    let link = nl.link_by_name(name).await.unwrap().unwrap();
    nl.set_up(link.index).await.unwrap();
}

/// Whether this kernel has bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING; some minimal
/// kernels lack it). Probed in the test's own namespace. `TETHER_TEST_EXPECT_VLANS=1`
/// (scripts/kernel-test, from the booted kernel's config) makes a failed probe a failure.
fn vlan_filtering_supported() -> bool {
    let ok = std::process::Command::new("ip")
        .args(["link", "add", "tprobe", "type", "bridge", "vlan_filtering", "1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        tool("ip", &["link", "del", "tprobe"]);
    }
    let expected = std::env::var("TETHER_TEST_EXPECT_VLANS").is_ok_and(|v| v == "1");
    assert!(ok || !expected, "TETHER_TEST_EXPECT_VLANS=1, but `ip link add type bridge vlan_filtering 1` fails");
    ok
}

/// Without VLAN filtering in the kernel, a VLAN configuration fails with a message that says so.
async fn assert_vlans_refused_clearly(nl: &Netlink, conf: &BridgeConf) {
    let err = device::ensure_bridge(nl, conf, None, GROUP).await.unwrap_err();
    assert_eq!(err.to_cni().code, 100, "{err}");
    assert!(err.to_cni().details.contains("CONFIG_BRIDGE_VLAN_FILTERING"), "{err:?}");
    eprintln!("note: this kernel has no bridge VLAN filtering; checked the error instead");
}

/// Wait up to 3 s for `cond` (IPv6 makes link-local addresses from a work queue).
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[test]
fn a_bridge_is_created_once_and_verified_after() {
    in_new_netns("a_bridge_is_created_once_and_verified_after", |nl| async move {
        let filtering = vlan_filtering_supported();
        let conf = BridgeConf { vlan_filtering: filtering, promisc: true, ..sealed("tbr0") };
        let br = device::ensure_bridge(&nl, &conf, Some(1400), GROUP).await.unwrap();
        assert!(br.is_bridge() && br.up && br.promisc);
        assert_eq!((br.group, br.mtu, br.vlan_filtering), (GROUP, Some(1400), Some(filtering)));
        let again = device::ensure_bridge(&nl, &conf, Some(9000), GROUP).await.unwrap();
        assert_eq!(again.index, br.index, "the existing bridge is used");
        assert_eq!(again.mtu, Some(1400), "MTU is set at creation only");
        assert_eq!(again.mac, br.mac, "its MAC is fixed");
        let mac = br.mac.clone().unwrap();
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast MAC");
        assert!(again.addr_gen_none(), "sealed bridge generates no IPv6 address");
        let doc = json("ip", &["-d", "link", "show", "dev", "tbr0"]);
        assert_eq!(doc[0]["linkinfo"]["info_data"]["vlan_filtering"], u8::from(filtering), "{doc}");
        assert_eq!(doc[0]["linkinfo"]["info_data"]["mcast_snooping"], 0, "a bridge tether makes does not snoop: {doc}");
        // an unconfigured bridge (made by someone else) is brought in line, its snooping left as it is
        tool("ip", &["link", "add", "tbr1", "type", "bridge"]);
        let br1 = device::ensure_bridge(&nl, &sealed("tbr1"), None, GROUP).await.unwrap();
        let br1 = nl.link_by_index(br1.index).await.unwrap().unwrap();
        assert!(br1.up && br1.addr_gen_none() && br1.group == GROUP && br1.arp_ignore == Some(8), "{br1:?}");
        let doc = json("ip", &["-d", "link", "show", "dev", "tbr1"]);
        assert_eq!(doc[0]["linkinfo"]["info_data"]["mcast_snooping"], 1, "{doc}");
    });
}

#[test]
fn concurrent_ensures_create_one_bridge() {
    in_new_netns("concurrent_ensures_create_one_bridge", |_| async move {
        let conf = sealed("tbr0");
        let conns: Vec<Netlink> = (0..16).map(|_| Netlink::connect().unwrap()).collect();
        let all = futures::future::join_all(conns.iter().map(|nl| device::ensure_bridge(nl, &conf, None, GROUP))).await;
        let indexes: Vec<u32> = all.into_iter().map(|r| r.unwrap().index).collect();
        assert!(indexes.iter().all(|i| *i == indexes[0]), "{indexes:?}");
        let links = json("ip", &["link", "show", "type", "bridge"]);
        assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    });
}

#[test]
fn a_device_that_is_not_a_bridge_is_refused_and_left_alone() {
    in_new_netns("a_device_that_is_not_a_bridge_is_refused_and_left_alone", |nl| async move {
        tool("ip", &["link", "add", "tbr0", "type", "veth", "peer", "name", "tbr0p"]);
        let before = nl.link_by_name("tbr0").await.unwrap().unwrap();
        let err = device::ensure_bridge(&nl, &sealed("tbr0"), None, GROUP).await.unwrap_err();
        assert_eq!(err.to_cni().code, 100);
        assert!(err.to_cni().msg.contains("not a bridge") && err.to_cni().msg.contains("veth"), "{err}");
        assert_eq!(nl.link_by_name("tbr0").await.unwrap().unwrap(), before, "the device was changed");
    });
}

#[test]
fn ports_are_enslaved_at_creation_with_their_options() {
    in_new_netns("ports_are_enslaved_at_creation_with_their_options", |nl| async move {
        let br = device::ensure_bridge(&nl, &sealed("tbr0"), None, GROUP).await.unwrap();
        let p = port_pair(&nl, "tp0", br.index).await;
        assert_eq!((p.master, p.group), (Some(br.index), GROUP), "enslaved and grouped by the creation request");
        let options = LinkUpdate { hairpin: Some(true), isolated: Some(true), ..LinkUpdate::default() };
        port::configure(&nl, &p, &options, &Default::default()).await.unwrap();
        let doc = json("ip", &["-d", "link", "show", "dev", "tp0"]);
        let slave = &doc[0]["linkinfo"]["info_slave_data"];
        assert_eq!((slave["hairpin"].as_bool(), slave["isolated"].as_bool()), (Some(true), Some(true)), "{doc}");
        // a plain port keeps the defaults
        let q = port_pair(&nl, "tp1", br.index).await;
        port::configure(&nl, &q, &LinkUpdate::default(), &Default::default()).await.unwrap();
        let doc = json("ip", &["-d", "link", "show", "dev", "tp1"]);
        let slave = &doc[0]["linkinfo"]["info_slave_data"];
        assert_eq!((slave["hairpin"].as_bool(), slave["isolated"].as_bool()), (Some(false), Some(false)), "{doc}");
    });
}

#[test]
fn port_vlans_replace_the_default_vlan() {
    in_new_netns("port_vlans_replace_the_default_vlan", |nl| async move {
        let conf = BridgeConf { vlan: 100, trunks: vec![200, 201, 202], vlan_filtering: true, ..sealed("tbr0") };
        if !vlan_filtering_supported() {
            return assert_vlans_refused_clearly(&nl, &conf).await;
        }
        let br = device::ensure_bridge(&nl, &conf, None, GROUP).await.unwrap();
        assert_eq!(br.vlan_default_pvid, Some(1));
        let p = port_pair(&nl, "tp0", br.index).await;
        let vlans = port_vlans(&conf, 1);
        port::configure(&nl, &p, &LinkUpdate::default(), &vlans).await.unwrap();
        let doc = json("bridge", &["vlan", "show", "dev", "tp0"]);
        let mut seen: Vec<(u64, bool, bool)> = Vec::new();
        for entry in doc[0]["vlans"].as_array().unwrap() {
            let flags: Vec<&str> =
                entry["flags"].as_array().map(|f| f.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
            let (pvid, untagged) = (flags.contains(&"PVID"), flags.contains(&"Egress Untagged"));
            let first = entry["vlan"].as_u64().unwrap();
            let last = entry["vlanEnd"].as_u64().unwrap_or(first);
            seen.extend((first..=last).map(|v| (v, pvid, untagged)));
        }
        assert_eq!(seen, [(100, true, true), (200, false, false), (201, false, false), (202, false, false)], "{doc}");
        // preserveDefaultVlan keeps VLAN 1 (no longer the PVID)
        let keep = BridgeConf { preserve_default_vlan: true, ..conf };
        let q = port_pair(&nl, "tp1", br.index).await;
        port::configure(&nl, &q, &LinkUpdate::default(), &port_vlans(&keep, 1)).await.unwrap();
        let doc = json("bridge", &["vlan", "show", "dev", "tp1"]);
        let vids: Vec<u64> = doc[0]["vlans"].as_array().unwrap().iter().map(|e| e["vlan"].as_u64().unwrap()).collect();
        assert_eq!(vids.first(), Some(&1), "{doc}");
    });
}

#[test]
fn a_sealed_segment_has_no_link_local_address_of_the_node() {
    in_new_netns("a_sealed_segment_has_no_link_local_address_of_the_node", |nl| async move {
        let br = device::ensure_bridge(&nl, &sealed("tbr0"), None, GROUP).await.unwrap();
        let p = port_pair(&nl, "tp0", br.index).await;
        port::configure(&nl, &p, &LinkUpdate::default(), &Default::default()).await.unwrap();
        // A control port, not configured: it does get a link-local address once it has carrier,
        // which shows the check below can fail.
        let ctl = port_pair(&nl, "tc0", br.index).await;
        set_up(&nl, "tp0p").await;
        set_up(&nl, "tc0p").await;
        port::wait_enabled(&nl, p.index, "tp0").await.unwrap();
        assert!(eventually(|| !link_locals("tc0").is_empty()).await, "the control port never got a link-local");
        assert!(link_locals("tp0").is_empty(), "port: {:?}", link_locals("tp0"));
        assert!(link_locals("tbr0").is_empty(), "bridge: {:?}", link_locals("tbr0"));
        let routes = tool("ip", &["-6", "route", "show", "dev", "tbr0"]);
        assert!(routes.trim().is_empty(), "IPv6 routes through the sealed bridge: {routes}");
        let v4 = tool("ip", &["-4", "addr", "show", "dev", "tbr0"]);
        assert!(v4.trim().is_empty(), "{v4}");
        let _ = ctl;
    });
}

#[test]
fn the_wait_ends_when_the_port_is_enabled() {
    in_new_netns("the_wait_ends_when_the_port_is_enabled", |nl| async move {
        let br = device::ensure_bridge(&nl, &sealed("tbr0"), None, GROUP).await.unwrap();
        let p = port_pair(&nl, "tp0", br.index).await;
        let now = nl.link_by_index(p.index).await.unwrap().unwrap();
        assert_eq!(now.port_state, Some(PORT_DISABLED), "no carrier yet: disabled");
        set_up(&nl, "tp0p").await;
        port::wait_enabled(&nl, p.index, "tp0").await.unwrap();
        let now = nl.link_by_index(p.index).await.unwrap().unwrap();
        assert_ne!(now.port_state, Some(PORT_DISABLED));
        // not a port: an error, not a hang
        let err = port::wait_enabled(&nl, br.index, "tbr0").await.unwrap_err();
        assert!(err.to_cni().msg.contains("no longer a bridge port"), "{err}");
    });
}

#[test]
fn a_vlan_gateway_is_a_veth_into_the_vlan() {
    in_new_netns("a_vlan_gateway_is_a_veth_into_the_vlan", |nl| async move {
        let conf = BridgeConf { is_gateway: true, vlan: 42, vlan_filtering: true, ..sealed("tbr0") };
        if !vlan_filtering_supported() {
            return assert_vlans_refused_clearly(&nl, &conf).await;
        }
        let br = device::ensure_bridge(&nl, &conf, None, GROUP).await.unwrap();
        let conns: Vec<Netlink> = (0..4).map(|_| Netlink::connect().unwrap()).collect();
        let made =
            futures::future::join_all(conns.iter().map(|c| device::ensure_vlan_gateway(c, &br, &conf, GROUP))).await;
        let gws: Vec<Link> = made.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert!(gws.iter().all(|g| g.name == "tbr0.42" && g.index == gws[0].index));
        let gw = nl.link_by_name("tbr0.42").await.unwrap().unwrap();
        assert!(gw.up && gw.group == GROUP, "{gw:?}");
        let ports = json("bridge", &["vlan", "show"]);
        let gw_port = ports
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ifname"].as_str().is_some_and(|n| n.starts_with("tgw")))
            .unwrap_or_else(|| panic!("no tgw port: {ports}"));
        let vlans = gw_port["vlans"].as_array().unwrap();
        assert_eq!(vlans.len(), 1, "{ports}");
        assert_eq!(vlans[0]["vlan"], 42);
        // not configured for a gateway VLAN: nothing
        assert!(device::ensure_vlan_gateway(&nl, &br, &sealed("tbr0"), GROUP).await.unwrap().is_none());
    });
}
