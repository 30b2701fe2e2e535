//! Applying a [`PtpPlan`] to a fresh veth pair, in as few round trips as the kernel allows:
//! each namespace's requests travel as one datagram (`netlink::Batch`), processed in order.

use super::PtpPlan;
use crate::attach::Attachment;
use crate::netlink::addr::AddrFlags;
use crate::netlink::link::{oper_up, Link};
use crate::netlink::{next_outcome, Netlink, NlContext, Outcomes};
use crate::sysctl;
use conf::{CniResult, NetResult};
use futures::future::join_all;
use ipnet::IpNet;
use nix::errno::Errno;

/// Configure both ends of the pair. Two round trips on the critical path:
/// 1. the container, in one datagram: its addresses, up, a get of the link (which brings its
///    state up to date, see `Netlink::sync_link_state`), the routes; the node's gateway
///    addresses and host routes go out at the same time in a datagram of their own;
/// 2. the node end's state brought up to date (its carrier came on with step 1).
///
/// Only on kernels before 6.8, where the gets cannot bring the state up to date, a third:
/// neighbour entries for the IPv6 addresses.
pub async fn configure(
    att: &Attachment<'_>,
    plan: &PtpPlan,
    allocated: &NetResult,
    (host_nl, host): (&Netlink, &Link),
    (ctr_nl, container): (&Netlink, &Link),
) -> CniResult<()> {
    let flags = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
    let mut node = host_nl.batch();
    plan.host_addrs.iter().for_each(|a| _ = node.add_addr(host.index, *a, flags));
    plan.host_routes.iter().for_each(|r| _ = node.add_route(host.index, r));
    let node = node.send();

    let mut ctr = ctr_nl.batch();
    plan.container_addrs.iter().for_each(|a| _ = ctr.add_addr(container.index, *a, flags));
    let up = ctr.set_up(container.index);
    let sync = ctr.get_link(container.index);
    plan.container_routes.iter().for_each(|r| _ = ctr.add_route(container.index, r));
    let mut outcomes = ctr.send().await.or_cni(format!("configure {} in the container", att.ifname()))?;
    if ipv6_refused(plan, &outcomes) {
        retry_with_ipv6_on(att, plan, ctr_nl, container.index, flags, &mut outcomes).await?;
    }
    let mut outcomes = outcomes.into_iter();
    for addr in &plan.container_addrs {
        next_outcome(&mut outcomes).or_cni(format!("add {addr} to {} in the container", att.ifname()))?;
    }
    debug_assert_eq!((up, sync), (plan.container_addrs.len(), plan.container_addrs.len() + 1));
    next_outcome(&mut outcomes).or_cni(format!("set {} up", att.ifname()))?;
    let synced = oper_up(&next_outcome(&mut outcomes).or_cni(format!("read {}", att.ifname()))?);
    for route in &plan.container_routes {
        let via = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
        next_outcome(&mut outcomes).or_cni(format!("add route {}{via} in the container", route.dst))?;
    }

    let (node, synced_host) = tokio::join!(node, host_nl.sync_link_state(host.index));
    let mut node = node.or_cni(format!("configure {}", host.name))?.into_iter();
    for addr in &plan.host_addrs {
        next_outcome(&mut node).or_cni(format!("add gateway {addr} to {}", host.name))?;
    }
    for route in &plan.host_routes {
        next_outcome(&mut node).or_cni(format!("add route {} dev {}", route.dst, host.name))?;
    }
    let synced = synced && synced_host.or_cni(format!("read {}", host.name))?;
    if !synced {
        seed_neighbours(allocated, (host_nl, host), (ctr_nl, container)).await?;
    }
    Ok(())
}

/// Whether the kernel refused an IPv6 address because IPv6 is disabled on the interface (EACCES).
fn ipv6_refused(plan: &PtpPlan, outcomes: &Outcomes) -> bool {
    plan.container_addrs
        .iter()
        .zip(outcomes)
        .any(|(a, o)| a.addr().is_ipv6() && matches!(o, Err(e) if e.errno == Some(Errno::EACCES)))
}

/// Enable IPv6 on the container interface and `lo`, then send again the addresses and routes
/// that failed, and put their new outcomes in place.
async fn retry_with_ipv6_on(
    att: &Attachment<'_>,
    plan: &PtpPlan,
    ctr_nl: &Netlink,
    index: u32,
    flags: AddrFlags,
    outcomes: &mut Outcomes,
) -> CniResult<()> {
    enable_ipv6(att)?;
    let routes_from = plan.container_addrs.len() + 2;
    let mut retry = ctr_nl.batch();
    let mut slots = Vec::new();
    for (i, addr) in plan.container_addrs.iter().enumerate() {
        if outcomes[i].is_err() {
            slots.push((i, retry.add_addr(index, *addr, flags)));
        }
    }
    for (j, route) in plan.container_routes.iter().enumerate() {
        if outcomes[routes_from + j].is_err() {
            slots.push((routes_from + j, retry.add_route(index, route)));
        }
    }
    let mut again = retry.send().await.or_cni(format!("configure {} in the container", att.ifname()))?;
    for (slot, k) in slots {
        outcomes[slot] = std::mem::replace(&mut again[k], Ok(Vec::new()));
    }
    Ok(())
}

/// IPv6 is disabled on the container interface (the namespace's `default.disable_ipv6` was 1
/// when the veth was born, as some runtimes leave it): enable it there and on `lo`, as the
/// reference does. Costs a thread start, so only on that path.
fn enable_ipv6(att: &Attachment<'_>) -> CniResult<()> {
    log::info!("IPv6 is disabled on {} in {}; enabling it", att.ifname(), att.sandbox());
    for dev in ["lo", att.ifname()] {
        sysctl::ensure_in(att.netns, &format!("net/ipv6/conf/{dev}/disable_ipv6"), "0")?;
    }
    Ok(())
}

/// Add one address to the container end, enabling IPv6 on the way when the kernel refuses it
/// for that reason (see [`enable_ipv6`]).
pub(crate) async fn add_container_addr(
    att: &Attachment<'_>,
    ctr_nl: &Netlink,
    index: u32,
    addr: IpNet,
    flags: AddrFlags,
) -> CniResult<()> {
    let what = || format!("add {addr} to {} in the container", att.ifname());
    match ctr_nl.add_addr(index, addr, flags).await {
        Err(e) if addr.addr().is_ipv6() && e.errno == Some(Errno::EACCES) => {
            enable_ipv6(att)?;
            ctr_nl.add_addr(index, addr, flags).await.or_cni(what())
        }
        other => other.or_cni(what()),
    }
}

/// Kernels before 6.8 leave the link state to linkwatch (up to a second): there, give both ends
/// each other's MAC for the IPv6 addresses, so the first packets need no neighbour discovery
/// (which is what fails until the link is ready).
async fn seed_neighbours(
    allocated: &NetResult,
    (host_nl, host): (&Netlink, &Link),
    (ctr_nl, container): (&Netlink, &Link),
) -> CniResult<()> {
    let (Some(host_mac), Some(ctr_mac)) = (&host.mac, &container.mac) else { return Ok(()) };
    let mut seeds = Vec::new();
    for ip in allocated.ips.iter().filter(|ip| ip.address.addr().is_ipv6()) {
        let addr = ip.address.addr();
        seeds.push((addr, host_nl.seed_neighbour(host.index, addr, ctr_mac)));
        if let Some(gw) = ip.gateway {
            seeds.push((gw, ctr_nl.seed_neighbour(container.index, gw, host_mac)));
        }
    }
    let (addrs, futures): (Vec<_>, Vec<_>) = seeds.into_iter().unzip();
    for (addr, seeded) in addrs.into_iter().zip(join_all(futures).await) {
        seeded.or_cni(format!("seed neighbour {addr}"))?;
    }
    Ok(())
}
