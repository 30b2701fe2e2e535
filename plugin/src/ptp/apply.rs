//! Applying a [`PtpPlan`] to a fresh veth pair, in as few round trips as the kernel allows:
//! each namespace's requests travel as one datagram (`netlink::Batch`), processed in order.

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
///    the lock of its gateway users, recorded first (see `super::gateway`);
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
    let root = &ctx.gateway_users;
    let users = gateway::lock(root)?;
    undo.gateway_user = true;
    gateway::record(&users, root, &plan.gateways, &host.name)?;

    let mut batch = ctx.node.batch();
    let flags = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
    let held: Vec<_> =
        plan.gateways.iter().map(|gw| (gw, batch.add_addr(gateway::LOOPBACK, gateway::held(*gw), flags))).collect();
    let routes: Vec<_> = plan.host_routes.iter().map(|r| (r, batch.add_route(host.index, r))).collect();
    // The node end's IPv6 link-local address is tentative for the first second (duplicate
    // address detection), and without a source address of the link the node sends no neighbour
    // solicitation at all (`ndisc_send_ns`): so the node is told the container's MAC. STALE: the
    // kernel confirms it by the usual unicast probe later, so a changed MAC is still learnt.
    let v6_addrs = allocated.ips.iter().map(|ip| ip.address.addr()).filter(IpAddr::is_ipv6);
    let seeds: Vec<_> = v6_addrs.map(|ip| (ip, batch.seed_neighbour(host.index, ip, ctr_mac))).collect();
    let node_side = async {
        let outcomes = batch.send().await;
        drop(users);
        outcomes
    };
    let neighbours: Vec<(IpAddr, &[u8])> = plan.gateways.iter().map(|gw| (*gw, host_mac)).collect();
    let setup = ContainerSetup {
        addrs: &plan.container_addrs,
        flags,
        arp_notify: false,
        up: true,
        neighbours: &neighbours,
        routes: &plan.container_routes,
    };
    let (node_side, container_side) = tokio::join!(node_side, container::configure(att, container.index, &setup));
    container_side?;
    let mut outcomes = node_side.doing(format!("configure {}", host.name))?;
    for (gw, slot) in held {
        match outcomes.take(slot) {
            Err(e) if !e.is_exists() => return Err(Error::kernel(format!("hold gateway {gw} on lo"), e)),
            _ => {}
        }
    }
    for (route, slot) in routes {
        outcomes.take(slot).doing(format!("add route {} dev {}", route.dst, host.name))?;
    }
    for (ip, slot) in seeds {
        outcomes.take(slot).doing(format!("add neighbour {ip} to {}", host.name))?;
    }
    ctx.node.sync_link_state(host.index).await.doing(format!("read {}", host.name))?;
    Ok(())
}
