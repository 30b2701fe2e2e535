//! Mode `ptp`: a routed veth per container (the reference `ptp` topology). [`plan`] decides
//! what goes where; [`wire`] applies it; [`check_node`] is the node half of CHECK.

mod plan;
#[cfg(test)]
mod root_tests;

pub use plan::{plan, PtpPlan};

use crate::attach::{Attachment, Undo};
use crate::netlink::addr::AddrFlags;
use crate::netlink::link::Link;
use crate::netlink::{Netlink, NlContext, NlError};
use crate::{masq, runtime, sysctl, veth};
use conf::{CniError, CniResult, ErrorCode, Interface, IpConfig, NetResult};
use futures::future::join_all;
use ipnet::IpNet;
use nix::errno::Errno;

/// Wire the attachment and build the result.
pub fn wire(att: &Attachment<'_>, allocated: &NetResult, undo: &mut Undo) -> CniResult<NetResult> {
    let plan = plan(allocated)?;
    let has_v4 = plan.container_addrs.iter().any(|a| a.addr().is_ipv4());
    let has_v6 = plan.container_addrs.iter().any(|a| a.addr().is_ipv6());
    sysctl::enable_forwarding(has_v4, has_v6)?;
    let (host, container) = runtime::build()?.block_on(async {
        let host_nl = Netlink::connect()?;
        let ctr_nl = {
            let _in_container = att.netns.enter()?;
            Netlink::connect()?
        };
        let (host, container) = veth::create_pair(att, &host_nl, &ctr_nl, undo, None).await?;
        configure(att, &plan, allocated, (&host_nl, &host), (&ctr_nl, &container)).await?;
        Ok::<(Link, Link), CniError>((host, container))
    })?;
    // The node end must not learn routes from router advertisements a container sends
    // (plugins#484): the reference sets the same.
    sysctl::ensure(&format!("net/ipv6/conf/{}/accept_ra", host.name), "0")?;
    if att.conf.ip_masq {
        undo.masq = true;
        masq::add(att.network(), att.container_id(), att.ifname(), &allocated.ips)?;
    }
    Ok(result(att, allocated, &host, &container))
}

/// Configure both ends of a fresh pair in two round trips on the critical path (requests on one
/// socket are queued together and the kernel runs them in order, see `Netlink::request`):
/// 1. container: its addresses, then up; node (not waited for): gateway addresses, host routes;
/// 2. both ends' link state brought up to date (the carrier came on in step 1, see
///    `Netlink::sync_link_state`) and, behind it, the container routes;
/// 3. only on kernels before 6.8, where step 2 cannot sync: neighbour entries for IPv6.
async fn configure(
    att: &Attachment<'_>,
    plan: &PtpPlan,
    allocated: &NetResult,
    (host_nl, host): (&Netlink, &Link),
    (ctr_nl, container): (&Netlink, &Link),
) -> CniResult<()> {
    let flags = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
    let node_addrs: Vec<_> = plan.host_addrs.iter().map(|a| host_nl.add_addr(host.index, *a, flags)).collect();
    let node_routes: Vec<_> = plan.host_routes.iter().map(|r| host_nl.add_route(host.index, r)).collect();
    let ctr_addrs: Vec<_> = plan.container_addrs.iter().map(|a| ctr_nl.add_addr(container.index, *a, flags)).collect();
    let up = ctr_nl.set_up(container.index);
    let (ctr_addrs, up) = tokio::join!(join_all(ctr_addrs), up);
    for (addr, added) in plan.container_addrs.iter().zip(ctr_addrs) {
        retry_without_ipv6_off(att, ctr_nl, container.index, *addr, flags, added).await?;
    }
    up.or_cni(format!("set {} up", att.ifname()))?;

    let (sync_ctr, sync_host) = (ctr_nl.sync_link_state(container.index), host_nl.sync_link_state(host.index));
    let ctr_routes: Vec<_> = plan.container_routes.iter().map(|r| ctr_nl.add_route(container.index, r)).collect();
    let (sync_ctr, sync_host, ctr_routes, node_addrs, node_routes) =
        tokio::join!(sync_ctr, sync_host, join_all(ctr_routes), join_all(node_addrs), join_all(node_routes));
    for (route, added) in plan.container_routes.iter().zip(ctr_routes) {
        let via = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
        added.or_cni(format!("add route {}{via} in the container", route.dst))?;
    }
    for (addr, added) in plan.host_addrs.iter().zip(node_addrs) {
        added.or_cni(format!("add gateway {addr} to {}", host.name))?;
    }
    for (route, added) in plan.host_routes.iter().zip(node_routes) {
        added.or_cni(format!("add route {} dev {}", route.dst, host.name))?;
    }
    let synced =
        sync_ctr.or_cni(format!("read {}", att.ifname()))? && sync_host.or_cni(format!("read {}", host.name))?;

    // Kernels before 6.8 leave the link state to linkwatch (up to a second): there, give both
    // ends each other's MAC for the IPv6 addresses, so the first packets need no neighbour
    // discovery (which is what fails until the link is ready).
    if let (false, Some(host_mac), Some(ctr_mac)) = (synced, &host.mac, &container.mac) {
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
    }
    Ok(())
}

/// Add one address to the container end (waiting for it), enabling IPv6 on the way when needed
/// (see [`retry_without_ipv6_off`]).
pub(crate) async fn add_container_addr(
    att: &Attachment<'_>,
    ctr_nl: &Netlink,
    index: u32,
    addr: IpNet,
    flags: AddrFlags,
) -> CniResult<()> {
    let added = ctr_nl.add_addr(index, addr, flags).await;
    retry_without_ipv6_off(att, ctr_nl, index, addr, flags, added).await
}

/// The outcome of adding `addr` to the container end, as a CNI result. When the kernel refused
/// an IPv6 address because IPv6 is disabled on the interface (EACCES: the namespace's
/// `default.disable_ipv6` was 1 when the veth was born, as some runtimes leave it), enable IPv6
/// on it and on `lo`, as the reference does, and try once more. Only on that path: the check
/// costs a thread start.
async fn retry_without_ipv6_off(
    att: &Attachment<'_>,
    ctr_nl: &Netlink,
    index: u32,
    addr: IpNet,
    flags: AddrFlags,
    added: Result<(), NlError>,
) -> CniResult<()> {
    let what = || format!("add {addr} to {} in the container", att.ifname());
    match added {
        Err(e) if addr.addr().is_ipv6() && e.errno == Some(Errno::EACCES) => {
            log::info!("IPv6 is disabled on {} in {}; enabling it", att.ifname(), att.sandbox());
            for dev in ["lo", att.ifname()] {
                sysctl::ensure_in(att.netns, &format!("net/ipv6/conf/{dev}/disable_ipv6"), "0")?;
            }
            ctr_nl.add_addr(index, addr, flags).await.or_cni(what())
        }
        other => other.or_cni(what()),
    }
}

fn result(att: &Attachment<'_>, allocated: &NetResult, host: &Link, container: &Link) -> NetResult {
    NetResult {
        interfaces: vec![
            Interface { name: host.name.clone(), mac: host.mac_string(), ..Interface::default() },
            Interface {
                name: container.name.clone(),
                mac: container.mac_string(),
                mtu: container.mtu,
                sandbox: Some(att.sandbox()),
                ..Interface::default()
            },
        ],
        ips: allocated.ips.iter().map(|ip| IpConfig { interface: Some(1), ..ip.clone() }).collect(),
        routes: allocated.routes.clone(),
        dns: att.request.config.dns_or(allocated.dns.clone()),
    }
}

/// CHECK on the node: the node end exists, carries the network's group, and routes each
/// container address.
pub async fn check_node(host: &Netlink, host_veth: &str, group: u32, ips: &[IpNet]) -> CniResult<()> {
    let drift = |msg: String| CniError::new(ErrorCode::Drift, msg);
    let node_end = host
        .link_by_name(host_veth)
        .await
        .or_cni(format!("read {host_veth}"))?
        .ok_or_else(|| drift(format!("node interface {host_veth} is missing")))?;
    if node_end.group != group {
        return Err(drift(format!("node interface {host_veth} is in group {:#x}, not {group:#x}", node_end.group)));
    }
    let node_routes = host.routes().await.or_cni("read node routes")?;
    for ip in ips {
        let host_route = IpNet::from(ip.addr());
        if !node_routes.iter().any(|r| r.dst == host_route && r.oif == Some(node_end.index)) {
            return Err(drift(format!("node route to {host_route} via {host_veth} is missing")));
        }
    }
    Ok(())
}
