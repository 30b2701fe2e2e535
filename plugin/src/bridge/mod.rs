//! Mode `bridge`: containers on a node bridge (the reference `bridge` topology and options).
//!
//! [`wire`] runs the recipe: the bridge (created race-free, never deleted), the container's veth
//! pair with its node end enslaved in the creation request, the port's options and VLANs, the
//! container's addresses and routes, the gateway addresses, then waits for the port to forward.
//! A bridge without `isGateway` is *sealed*: no address of the node on it (IPv6 link-local
//! included, on the bridge and on every port), so no route between the node and the segment.

pub mod check;
pub mod config;
mod dad;
mod device;
mod gateway;
mod plan;
mod port;
#[cfg(test)]
mod root_tests;

pub use check::check_node;

use crate::attach::{Attachment, Undo};
use crate::container::{self, ContainerSetup};
use crate::context::Context;
use crate::error::{Doing, Error, Result};
use crate::netlink::addr::AddrFlags;
use crate::netlink::bridge::LinkUpdate;
use crate::netlink::link::Link;
use crate::netlink::Netlink;
use crate::{sysctl, veth};
use conf::{Interface, NetResult};
use plan::BridgePlan;

/// The links an attachment ends up with.
struct Wired {
    bridge: Link,
    host: Link,
    container: Link,
    vlan_gateway: Option<Link>,
}

/// Wire the attachment and build the result.
pub async fn wire(ctx: &Context, att: &Attachment<'_>, allocated: &NetResult, undo: &mut Undo) -> Result<NetResult> {
    let conf = &att.conf.bridge;
    let plan = plan::plan(allocated, conf, att.conf.layer3)?;
    sysctl::enable_forwarding(plan.forward_v4, plan.forward_v6)?;
    let node = &ctx.node;
    let bridge = device::ensure_bridge(node, conf, att.conf.mtu, att.group).await?;
    // A port needs no address (see `port::configure`).
    let (host, container) = veth::create_pair(node, att, undo, Some(bridge.index), false).await?;
    if conf.spoofchk {
        // Before the container's end comes up: no frame of it may pass unchecked.
        let mac = mac_of(&container)?;
        undo.spoofchk = true;
        ctx.firewall.guard_port(att.owner(), &host.name, mac)?;
    }
    let options = LinkUpdate {
        hairpin: conf.hairpin.then_some(true),
        isolated: conf.port_isolation.then_some(true),
        ..LinkUpdate::default()
    };
    let vlans = plan::port_vlans(conf, bridge.vlan_default_pvid.unwrap_or(1));
    let gateway_side = async {
        if plan.gateway_addrs.is_empty() {
            return Ok(None);
        }
        let vlan_gateway = device::ensure_vlan_gateway(node, &bridge, conf, att.group).await?;
        let target = vlan_gateway.as_ref().unwrap_or(&bridge);
        gateway::ensure_addrs(node, target, &plan.gateway_addrs, conf.force_address).await?;
        Ok::<Option<Link>, Error>(vlan_gateway)
    };
    // The port's options and VLANs before the container's end comes up (see `port::configure`).
    let (p, g) = tokio::join!(port::configure(node, &host, &options, &vlans), gateway_side);
    p?;
    let vlan_gateway = g?;
    let setup = ContainerSetup {
        addrs: &plan.container_addrs,
        flags: AddrFlags { dad: conf.dad, ..AddrFlags::default() },
        arp_notify: true,
        up: !conf.no_container_iface,
        neighbours: &[],
        routes: &plan.container_routes,
    };
    container::configure(att, container.index, &setup).await?;
    if !conf.no_container_iface {
        let gw_link = vlan_gateway.as_ref().unwrap_or(&bridge);
        let (s, e, n) = tokio::join!(
            seed_neighbours(node, &att.ctr, &plan, gw_link, &container),
            port::wait_enabled(node, host.index, &host.name),
            async {
                match conf.dad && plan.container_addrs.iter().any(|a| a.addr().is_ipv6()) {
                    true => dad::settle(&att.ctr, container.index, att.ifname()).await,
                    false => Ok(()),
                }
            }
        );
        s.and(e).and(n)?;
    }
    // The bridge's MAC as it is now (one that tether did not create follows its ports).
    let bridge = node.link_by_index(bridge.index).await.doing(format!("read {}", conf.name))?.unwrap_or(bridge);
    let wired = Wired { bridge, host, container, vlan_gateway };
    if att.conf.ip_masq {
        undo.masq = true;
        ctx.firewall.masquerade(att.owner(), &allocated.ips, &att.conf.non_masquerade)?;
    }
    Ok(result(att, allocated, plan, &wired))
}

fn mac_of(link: &Link) -> Result<[u8; 6]> {
    link.mac
        .as_deref()
        .and_then(|m| <[u8; 6]>::try_from(m).ok())
        .ok_or_else(|| Error::kernel_state(format!("{} has no Ethernet address", link.name), false))
}

/// Gateway mode, IPv6: seed the node's neighbour entry for the container and the container's for
/// its gateway (see `netlink::neigh`): the first solicitation after ADD is sometimes lost and the
/// retry comes a second later. (ptp seeds the node side only: the container knows its gateway
/// by a permanent entry.)
async fn seed_neighbours(
    host_nl: &Netlink,
    ctr_nl: &Netlink,
    plan: &BridgePlan,
    gw_link: &Link,
    container: &Link,
) -> Result<()> {
    let (Some(gw_mac), Some(ctr_mac)) = (&gw_link.mac, &container.mac) else { return Ok(()) };
    for ip in plan.ips.iter().filter(|ip| ip.address.addr().is_ipv6()) {
        let Some(gw) = ip.gateway.filter(|_| !plan.gateway_addrs.is_empty()) else { continue };
        let addr = ip.address.addr();
        let (h, c) = tokio::join!(
            host_nl.seed_neighbour(gw_link.index, addr, ctr_mac),
            ctr_nl.seed_neighbour(container.index, gw, gw_mac)
        );
        h.doing(format!("seed neighbour {addr}"))?;
        c.doing(format!("seed neighbour {gw}"))?;
    }
    Ok(())
}

/// The result, in the reference's order: bridge, node end, container (the `ips` point at it,
/// index 2), then the VLAN gateway interface when there is one.
fn result(att: &Attachment<'_>, allocated: &NetResult, plan: BridgePlan, w: &Wired) -> NetResult {
    let mut interfaces = vec![
        Interface { name: w.bridge.name.clone(), mac: w.bridge.mac_string(), ..Interface::default() },
        Interface { name: w.host.name.clone(), mac: w.host.mac_string(), ..Interface::default() },
        Interface {
            name: w.container.name.clone(),
            mac: w.container.mac_string(),
            mtu: w.container.mtu,
            sandbox: Some(att.sandbox()),
            ..Interface::default()
        },
    ];
    if let Some(gw) = &w.vlan_gateway {
        interfaces.push(Interface { name: gw.name.clone(), mac: gw.mac_string(), ..Interface::default() });
    }
    NetResult { interfaces, ips: plan.ips, routes: plan.routes, dns: att.request.config.dns_or(allocated.dns.clone()) }
}
