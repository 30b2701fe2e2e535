//! Applying a [`PtpPlan`] to a fresh veth pair, in as few round trips as the kernel allows:
//! each namespace's requests travel as one datagram (`netlink::Batch`), processed in order.

use super::plan::host_prefix;
use super::{gateway, PtpPlan};
use crate::attach::{Attachment, Undo};
use crate::container::{self, ContainerSetup};
use crate::context::Context;
use crate::error::{Doing, Error, Result};
use crate::netlink::addr::AddrFlags;
use crate::netlink::link::Link;
use conf::NetResult;
use std::net::IpAddr;

/// Configure both ends of the pair. Two round trips on the critical path:
/// 1. at the same time, the container in one datagram (its addresses, up, a get of the link,
///    which brings its state up to date, see `Netlink::sync_link_state`, the gateways' permanent
///    neighbour entries, the routes) and the node in another (the gateways on `lo`, the host
///    routes, and for IPv6 the container's MAC as a neighbour of the node end); the node's under
///    the lock of its gateway users, recorded first (see `super::gateway`), taken once the
///    container's datagram is out;
/// 2. the node end's state brought up to date (its carrier came on with step 1).
pub async fn configure(
    ctx: &Context,
    att: &Attachment<'_>,
    plan: &PtpPlan,
    allocated: &NetResult,
    (host, container): (&Link, &Link),
    undo: &mut Undo,
) -> Result<()> {
    let (Some(host_mac), Some(ctr_mac)) = (host.mac.as_deref(), container.mac.as_deref()) else {
        return Err(Error::kernel_state(format!("the pair {} / {} has no MAC", host.name, att.ifname()), false));
    };
    let flags = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
    let neighbours: Vec<(IpAddr, &[u8])> = plan.gateways.iter().map(|gw| (*gw, host_mac)).collect();
    let setup = ContainerSetup {
        addrs: &plan.container_addrs,
        flags,
        arp_notify: false,
        up: true,
        neighbours: &neighbours,
        routes: &plan.container_routes,
    };
    let node_side = async {
        // Let the connection task send the container's datagram first (each send is processed
        // to completion inside the kernel, on this thread): the lock is then held only while the
        // node's own datagram is.
        tokio::task::yield_now().await;
        let root = &ctx.gateway_users;
        let users = gateway::lock(root)?;
        undo.gateway_user = true;
        gateway::record(&users, root, &plan.gateways, &host.name)?;
        configure_node(ctx, plan, allocated, host, ctr_mac).await
    };
    let (container_side, node_side) = tokio::join!(container::configure(att, container.index, &setup), node_side);
    container_side?;
    node_side?;
    ctx.node.sync_link_state(host.index).await.doing(format!("read {}", host.name))?;
    Ok(())
}

/// The node's datagram: the gateways held on `lo` (one already there is fine), link-local ones on
/// the node end, the host routes, and the container's IPv6 addresses as neighbours of the node
/// end. Why those: the node end's own link-local address is tentative for up to two seconds
/// (duplicate address detection after a random delay), and without a source address on the link
/// the node sends no neighbour solicitation at all (`ndisc_send_ns`). STALE: the kernel confirms
/// the entry by the usual unicast probe later, so a changed MAC is still learnt.
async fn configure_node(
    ctx: &Context,
    plan: &PtpPlan,
    allocated: &NetResult,
    host: &Link,
    ctr_mac: &[u8],
) -> Result<()> {
    let mut batch = ctx.node.batch();
    let on_link = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
    let on_lo = AddrFlags { host_scope: true, protocol: Some(gateway::PROTOCOL), ..on_link };
    let held: Vec<_> =
        plan.gateways.iter().map(|gw| (*gw, batch.add_addr(gateway::LOOPBACK, host_prefix(*gw), on_lo))).collect();
    let linked: Vec<_> =
        plan.node_end_gateways.iter().map(|gw| (gw.addr(), batch.add_addr(host.index, *gw, on_link))).collect();
    let routes: Vec<_> = plan.host_routes.iter().map(|r| (r, batch.add_route(host.index, r))).collect();
    let v6_addrs = allocated.ips.iter().map(|ip| ip.address.addr()).filter(IpAddr::is_ipv6);
    let seeds: Vec<_> = v6_addrs.map(|ip| (ip, batch.seed_neighbour(host.index, ip, ctr_mac))).collect();
    let mut outcomes = batch.send().await.doing(format!("configure {}", host.name))?;
    for (gw, slot) in held {
        match outcomes.take(slot) {
            Err(e) if !e.is_exists() => return Err(Error::kernel(format!("hold gateway {gw} on lo"), e)),
            _ => {}
        }
    }
    for (gw, slot) in linked {
        outcomes.take(slot).doing(format!("add gateway {gw} to {}", host.name))?;
    }
    for (route, slot) in routes {
        outcomes.take(slot).doing(format!("add route {} dev {}", route.dst, host.name))?;
    }
    for (ip, slot) in seeds {
        outcomes.take(slot).doing(format!("add neighbour {ip} to {}", host.name))?;
    }
    Ok(())
}
