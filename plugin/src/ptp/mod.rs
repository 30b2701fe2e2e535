//! Mode `ptp`: a routed veth per container (the reference `ptp` topology). [`plan`] decides
//! what goes where; [`wire`] applies it; [`check_node`] is the node half of CHECK.

mod plan;
#[cfg(test)]
mod root_tests;

pub use plan::plan;

use crate::attach::{Attachment, Undo};
use crate::netlink::addr::AddrFlags;
use crate::netlink::link::Link;
use crate::netlink::{Netlink, NlContext};
use crate::{masq, runtime, sysctl, veth};
use conf::{CniError, CniResult, ErrorCode, Interface, IpConfig, NetResult};
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
        let no_prefix_route = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
        let container_side = async {
            for addr in &plan.container_addrs {
                add_container_addr(att, &ctr_nl, container.index, *addr, no_prefix_route).await?;
            }
            ctr_nl.set_up(container.index).await.or_cni(format!("set {} up", att.ifname()))?;
            // Both ends' carrier just came on: have the kernel apply it now (see
            // `sync_link_state`) rather than within the next second.
            let (c, h) = tokio::join!(ctr_nl.sync_link_state(container.index), host_nl.sync_link_state(host.index));
            let synced = c.or_cni(format!("read {}", att.ifname()))? && h.or_cni(format!("read {}", host.name))?;
            for route in &plan.container_routes {
                ctr_nl.add_route(container.index, route).await.or_cni(format!(
                    "add route {}{} in the container",
                    route.dst,
                    route.gw.map(|g| format!(" via {g}")).unwrap_or_default()
                ))?;
            }
            Ok::<bool, CniError>(synced)
        };
        let host_side = async {
            for addr in &plan.host_addrs {
                host_nl
                    .add_addr(host.index, *addr, no_prefix_route)
                    .await
                    .or_cni(format!("add gateway {addr} to {}", host.name))?;
            }
            for route in &plan.host_routes {
                host_nl
                    .add_route(host.index, route)
                    .await
                    .or_cni(format!("add route {} dev {}", route.dst, host.name))?;
            }
            Ok::<(), CniError>(())
        };
        let (c, h) = tokio::join!(container_side, host_side);
        let synced = h.and(c)?;
        // Kernels before 6.8 leave the link state to linkwatch (up to a second): there, give
        // both ends each other's MAC for the IPv6 addresses, so the first packets need no
        // neighbour discovery (which is what fails until the link is ready).
        if let (false, Some(host_mac), Some(ctr_mac)) = (synced, &host.mac, &container.mac) {
            for ip in allocated.ips.iter().filter(|ip| ip.address.addr().is_ipv6()) {
                let (addr, gw) = (ip.address.addr(), ip.gateway);
                host_nl.seed_neighbour(host.index, addr, ctr_mac).await.or_cni(format!("seed neighbour {addr}"))?;
                if let Some(gw) = gw {
                    ctr_nl
                        .seed_neighbour(container.index, gw, host_mac)
                        .await
                        .or_cni(format!("seed neighbour {gw}"))?;
                }
            }
        }
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

/// Add one address to the container end. When the kernel refuses an IPv6 address because IPv6
/// is disabled on the interface (EACCES: the namespace's `default.disable_ipv6` was 1 when the
/// veth was born, as some runtimes leave it), enable IPv6 on it and on `lo`, as the reference
/// does, and try once more. Only on that path: the check costs a thread start.
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
