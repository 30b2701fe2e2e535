//! Applying a [`PtpPlan`] to a fresh veth pair, in as few round trips as the kernel allows:
//! each namespace's requests travel as one datagram (`netlink::Batch`), processed in order.

use super::PtpPlan;
use crate::attach::Attachment;
use crate::container::{self, ContainerSetup};
use crate::error::{Doing, Result};
use crate::netlink::addr::AddrFlags;
use crate::netlink::link::Link;
use crate::netlink::Netlink;
use conf::NetResult;
use futures::future::join_all;

/// Configure both ends of the pair. Two round trips on the critical path:
/// 1. at the same time, the container in one datagram (its addresses, up, a get of the link,
///    which brings its state up to date, see `Netlink::sync_link_state`, the routes) and the
///    node in another (the gateway addresses and host routes on the node end);
/// 2. the node end's state brought up to date (its carrier came on with step 1).
///
/// Only on kernels before 6.8, where the gets cannot bring the state up to date, a third:
/// neighbour entries for the IPv6 addresses.
pub async fn configure(
    node: &Netlink,
    att: &Attachment<'_>,
    plan: &PtpPlan,
    allocated: &NetResult,
    host: &Link,
    container: &Link,
) -> Result<()> {
    let flags = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
    let mut batch = node.batch();
    let addrs: Vec<_> = plan.host_addrs.iter().map(|a| (a, batch.add_addr(host.index, *a, flags))).collect();
    let routes: Vec<_> = plan.host_routes.iter().map(|r| (r, batch.add_route(host.index, r))).collect();
    let setup = ContainerSetup {
        addrs: &plan.container_addrs,
        flags,
        arp_notify: false,
        up: true,
        routes: &plan.container_routes,
    };
    let (node_side, container_synced) = tokio::join!(batch.send(), container::configure(att, container.index, &setup));
    let container_synced = container_synced?;
    let mut outcomes = node_side.doing(format!("configure {}", host.name))?;
    for (addr, slot) in addrs {
        outcomes.take(slot).doing(format!("add gateway {addr} to {}", host.name))?;
    }
    for (route, slot) in routes {
        outcomes.take(slot).doing(format!("add route {} dev {}", route.dst, host.name))?;
    }
    let host_synced = node.sync_link_state(host.index).await.doing(format!("read {}", host.name))?;
    if !(container_synced && host_synced) {
        seed_neighbours(allocated, (node, host), (&att.ctr, container)).await?;
    }
    Ok(())
}

/// Kernels before 6.8 leave the link state to linkwatch (up to a second): there, give both ends
/// each other's MAC for the IPv6 addresses, so the first packets need no neighbour discovery
/// (which is what fails until the link is ready).
async fn seed_neighbours(
    allocated: &NetResult,
    (node, host): (&Netlink, &Link),
    (ctr, container): (&Netlink, &Link),
) -> Result<()> {
    let (Some(host_mac), Some(ctr_mac)) = (&host.mac, &container.mac) else { return Ok(()) };
    let mut seeds = Vec::new();
    for ip in allocated.ips.iter().filter(|ip| ip.address.addr().is_ipv6()) {
        let addr = ip.address.addr();
        seeds.push((addr, node.seed_neighbour(host.index, addr, ctr_mac)));
        if let Some(gw) = ip.gateway {
            seeds.push((gw, ctr.seed_neighbour(container.index, gw, host_mac)));
        }
    }
    let (addrs, futures): (Vec<_>, Vec<_>) = seeds.into_iter().unzip();
    for (addr, seeded) in addrs.into_iter().zip(join_all(futures).await) {
        seeded.doing(format!("seed neighbour {addr}"))?;
    }
    Ok(())
}
