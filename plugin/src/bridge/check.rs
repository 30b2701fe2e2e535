//! CHECK on the node for bridge mode: the bridge exists and is a bridge (MAC and promiscuity as
//! reported and configured), the node end is enslaved to it and in the network's group, a gateway
//! bridge carries its gateway addresses, a sealed one carries no address at all, and the spoof
//! check guards the port with the container's MAC.

use super::config::BridgeConf;
use crate::error::{Doing, Error, Result};
use crate::firewall::{Firewall, Owner};
use crate::netlink::link::Link;
use crate::netlink::Netlink;
use conf::NetResult;
use ipnet::IpNet;

/// What the node half of CHECK needs to know about the attachment.
pub struct Expected<'a> {
    /// The attachment.
    pub owner: Owner<'a>,
    /// The node end's name.
    pub host_veth: &'a str,
    /// The network's isolation group (0: not isolated, not checked).
    pub group: u32,
    /// The container interface as it is now.
    pub container: &'a Link,
}

/// CHECK the node side of a bridge attachment against `prev` (the ADD result).
pub async fn check_node(
    nl: &Netlink,
    firewall: &Firewall,
    conf: &BridgeConf,
    prev: &NetResult,
    want: &Expected<'_>,
) -> Result<()> {
    let name = conf.name.as_str();
    let br = nl
        .link_by_name(name)
        .await
        .doing(format!("read {name}"))?
        .ok_or_else(|| Error::drift(format!("bridge {name} is missing")))?;
    if !br.is_bridge() {
        return Err(Error::drift(format!("{name} is not a bridge")));
    }
    if let Some(reported) = prev.interfaces.iter().find(|i| i.name == name && i.sandbox.is_none()) {
        if let (Some(want_mac), Some(have)) = (&reported.mac, br.mac_string()) {
            if !want_mac.eq_ignore_ascii_case(&have) {
                return Err(Error::drift(format!("bridge {name} has MAC {have}, prevResult says {want_mac}")));
            }
        }
    }
    if br.promisc != conf.promisc {
        return Err(Error::drift(format!(
            "bridge {name}: promiscuous mode is {}, configured {}",
            br.promisc, conf.promisc
        )));
    }
    let port = nl
        .link_by_name(want.host_veth)
        .await
        .doing(format!("read {}", want.host_veth))?
        .ok_or_else(|| Error::drift(format!("node interface {} is missing", want.host_veth)))?;
    if port.master != Some(br.index) {
        return Err(Error::drift(format!("node interface {} is not a port of {name}", want.host_veth)));
    }
    if want.group != 0 && port.group != want.group {
        return Err(Error::drift(format!(
            "node interface {} is in group {:#x}, not {:#x}",
            want.host_veth, port.group, want.group
        )));
    }
    let on_bridge = nl.addrs_of(br.index).await.doing(format!("read addresses of {name}"))?;
    if conf.sealed() {
        if let Some(a) = on_bridge.first() {
            return Err(Error::drift(format!("sealed bridge {name} carries the node address {a}")));
        }
    } else {
        // The gateway addresses are on the bridge, or on `<bridge>.<vlan>` for a VLAN.
        let (holder, have) = match conf.vlan_gateway() {
            None => (name.to_string(), on_bridge),
            Some(gw_name) => {
                let link = nl
                    .link_by_name(&gw_name)
                    .await
                    .doing(format!("read {gw_name}"))?
                    .ok_or_else(|| Error::drift(format!("VLAN gateway interface {gw_name} is missing")))?;
                let have = nl.addrs_of(link.index).await.doing(format!("read addresses of {gw_name}"))?;
                (gw_name, have)
            }
        };
        for ip in &prev.ips {
            let Some(gw) = ip.gateway else { continue };
            let expected = IpNet::new(gw, ip.address.prefix_len()).unwrap_or(IpNet::from(gw));
            if !have.contains(&expected) {
                return Err(Error::drift(format!("gateway address {expected} is missing from {holder}")));
            }
        }
    }
    if conf.spoofchk {
        let mac = want.container.mac.clone().unwrap_or_default();
        firewall.check_port_guard(want.owner, want.host_veth, &mac)?;
    }
    Ok(())
}
