//! The shared node devices of a bridge network: the bridge itself, and the VLAN gateway interface
//! `<bridge>.<vlan>`. Both are created race-free by the first ADD that needs them (NLM_F_EXCL; on
//! EEXIST the winner's device is read back and verified) and are never deleted: other containers
//! may be joining them at any moment.

use super::config::BridgeConf;
use super::plan::port_vlans;
use super::port;
use crate::error::{Doing, Error, Result};
use crate::netlink::bridge::{BridgeSpec, LinkUpdate};
use crate::netlink::link::{Link, VethSpec};
use crate::netlink::{Netlink, NlError};
use crate::sysctl;
use nix::errno::Errno;
use std::io::Read;

/// `arp_ignore` 8: the node answers ARP for none of its addresses on a sealed bridge.
const ARP_IGNORE_ALL: i32 = 8;

/// A random locally administered unicast MAC for a new bridge. Fixed at creation, so the bridge
/// does not take over (and then change with) the lowest MAC of its ports.
fn random_mac() -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut mac)).map_err(|cause| Error::File {
        doing: "read".into(),
        path: "/dev/urandom".into(),
        cause,
    })?;
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}

/// A failed bridge request; EOPNOTSUPP while VLANs are configured most likely means a kernel
/// without bridge VLAN filtering, which the message then says.
fn bridge_error(e: NlError, what: String, conf: &BridgeConf) -> Error {
    if e.errno == Some(Errno::EOPNOTSUPP) && conf.vlan_filtering {
        return Error::kernel(what, e)
            .hint("vlan/vlanTrunk need bridge VLAN filtering, which this kernel lacks (CONFIG_BRIDGE_VLAN_FILTERING)");
    }
    Error::kernel(what, e)
}

fn not_a(name: &str, kind: &str, link: &Link) -> Error {
    Error::Taken(format!(
        "{name:?} already exists but is not a {kind} (it is a {})",
        link.kind.as_deref().unwrap_or("device")
    ))
}

/// What to change on an existing bridge so it matches the network: up, promiscuous if asked,
/// the network's group (unless it already has a group of its own), VLAN filtering if VLANs are
/// used, and for a sealed bridge no IPv6 address generation and no ARP answers.
fn fixes(br: &Link, conf: &BridgeConf, group: u32) -> LinkUpdate {
    let mut update = LinkUpdate { up: !br.up, ..LinkUpdate::default() };
    if conf.promisc && !br.promisc {
        update.promisc = Some(true);
    }
    if group == 0 {
        // not isolated: whatever group the bridge has is not ours to change
    } else if br.group == 0 {
        update.group = Some(group);
    } else if br.group != group {
        log::warn!("bridge {} keeps its link group {:#x}; network isolation expects {group:#x}", br.name, br.group);
    }
    if conf.vlan_filtering && br.vlan_filtering != Some(true) {
        update.vlan_filtering = Some(true);
    }
    if conf.sealed() {
        // None when IPv6 is disabled on the node: nothing to turn off then.
        update.addr_gen_none = br.addr_gen_mode.is_some() && !br.addr_gen_none();
        if br.arp_ignore.is_some_and(|a| a != ARP_IGNORE_ALL) {
            update.arp_ignore = Some(ARP_IGNORE_ALL);
        }
    }
    update
}

/// The bridge of the network, created if missing, verified and brought in line if present.
///
/// A bridge made here does not snoop multicast. On a snooping bridge every port that joins or
/// leaves makes the kernel re-arm both multicast query timers of every other port
/// (`br_stp_enable_port` / `br_stp_disable_port` -> `br_port_state_selection` ->
/// `br_multicast_enable_port`): with 1,000 ports, 36% of the CPU of deleting one (`perf record`
/// of `ip link del`), and 2,000 timers fire on the next tick, per container start or stop.
/// `bench/probes/multicast-snooping.sh` on fresh 1,000-port nodes, two each: ADD 6.17 and 6.87
/// ms with snooping, 4.92 and 5.13 ms without; DEL CPU 4.49 and 5.07 against 3.47 and 3.71 ms.
/// Forwarding is the same without a multicast querier on the segment (the bridge is none,
/// `multicast_querier` 0): a snooping bridge that has seen no query floods multicast too. Where
/// a querier runs, the operator makes the bridge or sets `mcast_snooping 1` on it; an existing
/// bridge's snooping is never changed.
///
/// # Errors
/// Code 100 when a device of that name is not a bridge, or a netlink request fails.
pub async fn ensure_bridge(nl: &Netlink, conf: &BridgeConf, mtu: Option<u32>, group: u32) -> Result<Link> {
    let name = conf.name.as_str();
    let mut br = match nl.link_by_name(name).await.doing(format!("read bridge {name}"))? {
        Some(link) => link,
        None => {
            let spec = BridgeSpec {
                name,
                mtu,
                mac: random_mac()?,
                group,
                vlan_filtering: conf.vlan_filtering,
                promisc: conf.promisc,
                multicast_snooping: false,
            };
            match nl.create_bridge(&spec).await {
                Ok(()) => log::info!("created bridge {name}"),
                Err(e) if e.is_exists() => {} // a concurrent ADD won: read what it made
                Err(e) => return Err(bridge_error(e, format!("create bridge {name}"), conf)),
            }
            nl.link_by_name(name)
                .await
                .doing(format!("read bridge {name}"))?
                .ok_or_else(|| Error::kernel_state(format!("bridge {name} vanished right after its creation"), true))?
        }
    };
    if !br.is_bridge() {
        return Err(not_a(name, "bridge", &br));
    }
    let update = fixes(&br, conf, group);
    if !update.is_empty() {
        nl.update_link(br.index, &update)
            .await
            .map_err(|e| bridge_error(e, format!("configure bridge {name}"), conf))?;
        br.up = true;
        br.promisc |= update.promisc == Some(true);
        br.group = update.group.unwrap_or(br.group);
    }
    // The node must not learn addresses or routes from router advertisements containers send
    // (the reference sets the same); on a sealed bridge that would break the isolation. Read from
    // the link (no accept_ra: no IPv6 on the bridge, nothing to learn).
    if br.accept_ra.is_some_and(|ra| ra != 0) {
        sysctl::set(&format!("net/ipv6/conf/{name}/accept_ra"), "0")?;
    }
    Ok(br)
}

/// The name of the bridge port of a VLAN gateway: `tgw` + 12 hex digits of a hash of the bridge
/// and VLAN, deterministic so concurrent ADDs agree on it.
fn gateway_port_name(bridge: &str, vlan: u16) -> String {
    let hash = conf::hash::fnv1a64(bridge.bytes().chain(vlan.to_be_bytes()));
    format!("tgw{:012x}", hash & 0xffff_ffff_ffff)
}

/// The VLAN gateway interface `<bridge>.<vlan>` (the reference's design): one end of a veth pair
/// whose other end is a port of the bridge with the VLAN as its untagged PVID, so the gateway
/// addresses live in the VLAN. Created if missing.
pub async fn ensure_vlan_gateway(nl: &Netlink, br: &Link, conf: &BridgeConf, group: u32) -> Result<Option<Link>> {
    let Some(name) = conf.vlan_gateway() else { return Ok(None) };
    if let Some(link) = nl.link_by_name(&name).await.doing(format!("read {name}"))? {
        return match link.kind.as_deref() {
            Some("veth") => Ok(Some(link)),
            _ => Err(not_a(&name, "veth (VLAN gateway)", &link)),
        };
    }
    let port_name = gateway_port_name(&conf.name, conf.vlan);
    let spec = VethSpec {
        host_name: &port_name,
        peer_name: &name,
        peer_netns_fd: None,
        mtu: br.mtu,
        peer_mac: None,
        host_master: Some(br.index),
        host_group: Some(group),
    };
    match nl.create_veth(&spec).await {
        Ok(()) => {
            let port_link = nl
                .link_by_name(&port_name)
                .await
                .doing(format!("read {port_name}"))?
                .ok_or_else(|| Error::kernel_state(format!("{port_name} vanished"), true))?;
            let gw_conf = BridgeConf { trunks: Vec::new(), ..conf.clone() };
            let vlans = port_vlans(&gw_conf, br.vlan_default_pvid.unwrap_or(1));
            port::configure(nl, &port_link, &LinkUpdate::default(), &vlans).await?;
        }
        Err(e) if e.is_exists() => {} // a concurrent ADD made it
        Err(e) => return Err(Error::kernel(format!("create VLAN gateway {name} / {port_name}"), e)),
    }
    let link = nl
        .link_by_name(&name)
        .await
        .doing(format!("read {name}"))?
        .ok_or_else(|| Error::kernel_state(format!("{name} vanished right after its creation"), true))?;
    if !link.up {
        // The peer of a new veth cannot be created up (see `create_veth`).
        nl.update_link(link.index, &LinkUpdate { up: true, ..LinkUpdate::default() })
            .await
            .doing(format!("set {name} up"))?;
    }
    Ok(Some(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_port_name_is_stable() {
        // Concurrent ADDs, and tether releases, must agree on it.
        assert_eq!(gateway_port_name("tether0", 42), "tgw074ebee4ec01");
    }

    fn bridge() -> Link {
        Link {
            index: 7,
            name: "tether0".into(),
            mac: None,
            mtu: Some(1500),
            kind: Some("bridge".into()),
            master: None,
            up: true,
            promisc: false,
            group: 0x7e00_0001,
            alias: None,
            peer_netnsid: None,
            addr_gen_mode: Some(1),
            arp_ignore: Some(8),
            accept_ra: Some(0),
            port_state: None,
            vlan_filtering: Some(false),
            vlan_default_pvid: Some(1),
        }
    }

    #[test]
    fn a_matching_bridge_needs_no_request() {
        assert!(fixes(&bridge(), &BridgeConf::default(), 0x7e00_0001).is_empty());
    }

    #[test]
    fn an_unconfigured_bridge_is_brought_in_line() {
        let br = Link { up: false, group: 0, addr_gen_mode: Some(0), arp_ignore: Some(0), ..bridge() };
        let conf = BridgeConf { promisc: true, vlan_filtering: true, ..BridgeConf::default() };
        let u = fixes(&br, &conf, 0x7e00_0001);
        assert_eq!(
            u,
            LinkUpdate {
                up: true,
                promisc: Some(true),
                group: Some(0x7e00_0001),
                addr_gen_none: true,
                arp_ignore: Some(8),
                vlan_filtering: Some(true),
                ..LinkUpdate::default()
            }
        );
        // a gateway bridge keeps its link-local address and ARP
        let gw = BridgeConf { is_gateway: true, ..BridgeConf::default() };
        let u = fixes(&br, &gw, 0x7e00_0001);
        assert!(!u.addr_gen_none && u.arp_ignore.is_none());
        // a group someone else set is left alone
        assert_eq!(fixes(&Link { group: 5, ..bridge() }, &BridgeConf::default(), 0x7e00_0001).group, None);
    }

    #[test]
    fn names_and_macs() {
        let n = gateway_port_name("tether0", 100);
        assert_eq!(n.len(), 15);
        assert_eq!(n, gateway_port_name("tether0", 100));
        assert_ne!(n, gateway_port_name("tether0", 101));
        let mac = random_mac().unwrap();
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
    }
}
