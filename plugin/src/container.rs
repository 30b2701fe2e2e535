//! What every mode does inside the container, once its end of the pair exists: the addresses,
//! the link up, permanent neighbours, the routes, in one datagram (`netlink::Batch`, processed in order, so each
//! route finds its source address and an up link), with IPv6 enabled on the way when the
//! namespace had it disabled.

use crate::attach::Attachment;
use crate::error::{Doing, Result};
use crate::netlink::addr::AddrFlags;
use crate::netlink::bridge::LinkUpdate;
use crate::netlink::route::RouteSpec;
use crate::netlink::{Outcomes, Slot};
use crate::sysctl;
use ipnet::IpNet;
use nix::errno::Errno;
use std::net::IpAddr;

/// What the container end gets.
pub struct ContainerSetup<'a> {
    /// Its addresses, with their prefix.
    pub addrs: &'a [IpNet],
    /// How they are added.
    pub flags: AddrFlags,
    /// Set `arp_notify` (a gratuitous ARP when the link comes up: neighbours forget a reused
    /// address's old MAC).
    pub arp_notify: bool,
    /// Bring the link up and add `neighbours` and `routes` (a bridge attachment without a
    /// container interface leaves it down).
    pub up: bool,
    /// Permanent neighbour entries (address, MAC): ptp's gateways, which the node end does not
    /// answer for (see `ptp::gateway`).
    pub neighbours: &'a [(IpAddr, &'a [u8])],
    /// Its routes, in order.
    pub routes: &'a [RouteSpec],
}

/// The requests of one [`configure`] datagram, by what they ask.
struct Sent {
    addrs: Vec<(IpNet, Slot)>,
    arp_notify: Option<Slot>,
    up: Option<(Slot, Slot)>,
    neighbours: Vec<(IpAddr, Slot)>,
    routes: Vec<(usize, Slot)>,
}

/// Configure the container end `index` of `att`. The get of the link in the datagram brings its
/// state up to date (it runs the kernel's pending linkwatch work: Linux 6.8 and later, see
/// `Netlink::sync_link_state`).
///
/// # Errors
/// The first request that failed, naming it.
pub async fn configure(att: &Attachment<'_>, index: u32, setup: &ContainerSetup<'_>) -> Result<()> {
    let ctr = &att.ctr;
    let mut batch = ctr.batch();
    let mut sent = Sent { addrs: Vec::new(), arp_notify: None, up: None, neighbours: Vec::new(), routes: Vec::new() };
    for addr in setup.addrs {
        sent.addrs.push((*addr, batch.add_addr(index, *addr, setup.flags)));
    }
    if setup.arp_notify {
        sent.arp_notify = Some(batch.update_link(index, &LinkUpdate { arp_notify: true, ..LinkUpdate::default() }));
    }
    if setup.up {
        sent.up = Some((batch.set_up(index), batch.get_link(index)));
        for (ip, mac) in setup.neighbours {
            sent.neighbours.push((*ip, batch.add_permanent_neighbour(index, *ip, mac)));
        }
        for (i, route) in setup.routes.iter().enumerate() {
            sent.routes.push((i, batch.add_route(index, route)));
        }
    }
    let mut outcomes = batch.send().await.doing(format!("configure {} in the container", att.ifname()))?;
    if ipv6_refused(&sent, &outcomes) {
        retry_with_ipv6_on(att, index, setup, &sent, &mut outcomes).await?;
    }
    for (addr, slot) in &sent.addrs {
        outcomes.take(*slot).doing(format!("add {addr} to {} in the container", att.ifname()))?;
    }
    if let Some(slot) = sent.arp_notify {
        outcomes.take(slot).doing(format!("set arp_notify on {}", att.ifname()))?;
    }
    let Some((up, get)) = sent.up else { return Ok(()) };
    outcomes.take(up).doing(format!("set {} up", att.ifname()))?;
    outcomes.take(get).doing(format!("read {}", att.ifname()))?;
    for (ip, slot) in &sent.neighbours {
        outcomes.take(*slot).doing(format!("add neighbour {ip} to {} in the container", att.ifname()))?;
    }
    for (i, slot) in &sent.routes {
        let route = &setup.routes[*i];
        let via = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
        outcomes.take(*slot).doing(format!("add route {}{via} in the container", route.dst))?;
    }
    Ok(())
}

/// Whether the kernel refused an IPv6 address because IPv6 is disabled on the interface (EACCES).
fn ipv6_refused(sent: &Sent, outcomes: &Outcomes) -> bool {
    sent.addrs
        .iter()
        .any(|(a, slot)| a.addr().is_ipv6() && outcomes.error(*slot).is_some_and(|e| e.errno == Some(Errno::EACCES)))
}

/// IPv6 is disabled on the container interface (the namespace's `default.disable_ipv6` was 1
/// when the veth was born, as some runtimes leave it): enable it there and on `lo`, as the
/// reference does, then send again the addresses, neighbours and routes that failed and put their new
/// outcomes in place. Costs a thread start (`sysctl::ensure_in`), so only on that path.
async fn retry_with_ipv6_on(
    att: &Attachment<'_>,
    index: u32,
    setup: &ContainerSetup<'_>,
    sent: &Sent,
    outcomes: &mut Outcomes,
) -> Result<()> {
    log::info!("IPv6 is disabled on {} in {}; enabling it", att.ifname(), att.sandbox());
    for dev in ["lo", att.ifname()] {
        sysctl::ensure_in(att.netns, &format!("net/ipv6/conf/{dev}/disable_ipv6"), "0")?;
    }
    let mut retry = att.ctr.batch();
    let mut again = Vec::new();
    for (addr, slot) in &sent.addrs {
        if outcomes.error(*slot).is_some() {
            again.push((*slot, retry.add_addr(index, *addr, setup.flags)));
        }
    }
    for ((ip, slot), (_, mac)) in sent.neighbours.iter().zip(setup.neighbours) {
        if outcomes.error(*slot).is_some() {
            again.push((*slot, retry.add_permanent_neighbour(index, *ip, mac)));
        }
    }
    for (i, slot) in &sent.routes {
        if outcomes.error(*slot).is_some() {
            again.push((*slot, retry.add_route(index, &setup.routes[*i])));
        }
    }
    let mut answers = retry.send().await.doing(format!("configure {} in the container", att.ifname()))?;
    for (first, second) in again {
        outcomes.replace(first, answers.take(second));
    }
    Ok(())
}
