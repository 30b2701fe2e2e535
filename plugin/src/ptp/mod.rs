//! Mode `ptp`: a routed veth per container (the reference `ptp` topology). [`plan`] decides
//! what goes where; [`wire`] applies it; [`check_node`] is the node half of CHECK.

mod apply;
mod plan;
#[cfg(test)]
mod root_tests;

pub(crate) use apply::add_container_addr;
pub use plan::{plan, PtpPlan};

use crate::attach::{Attachment, Undo};
use crate::check::drift;
use crate::netlink::link::Link;
use crate::netlink::{Netlink, NlContext};
use crate::{masq, runtime, sysctl, veth};
use conf::{CniError, CniResult, Interface, IpConfig, NetResult};
use futures::future::join_all;
use ipnet::IpNet;

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
        apply::configure(att, &plan, allocated, (&host_nl, &host), (&ctr_nl, &container)).await?;
        Ok::<(Link, Link), CniError>((host, container))
    })?;
    // The node end must not learn routes from router advertisements a container sends
    // (plugins#484): the reference sets the same.
    sysctl::ensure(&format!("net/ipv6/conf/{}/accept_ra", host.name), "0")?;
    if att.conf.ip_masq {
        undo.masq = true;
        masq::add(att.network(), att.container_id(), att.ifname(), &allocated.ips, &att.conf.non_masquerade)?;
    }
    Ok(result(att, allocated, &host, &container))
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

/// CHECK on the node: the node end exists, carries the network's group (when isolated), and routes each
/// container address.
pub async fn check_node(host: &Netlink, host_veth: &str, group: u32, ips: &[IpNet]) -> CniResult<()> {
    let node_end = host
        .link_by_name(host_veth)
        .await
        .or_cni(format!("read {host_veth}"))?
        .ok_or_else(|| drift(format!("node interface {host_veth} is missing")))?;
    if group != 0 && node_end.group != group {
        return Err(drift(format!("node interface {host_veth} is in group {:#x}, not {group:#x}", node_end.group)));
    }
    // Only ptp's host routes lead into the node end, so a lookup that ends there is ours.
    let lookups: Vec<_> = ips.iter().map(|ip| host.route_oif(ip.addr())).collect();
    for (ip, oif) in ips.iter().zip(join_all(lookups).await) {
        let oif = oif.or_cni(format!("look up the node route to {}", ip.addr()))?;
        if oif != Some(node_end.index) {
            return Err(drift(format!("node route to {} via {host_veth} is missing", ip.addr())));
        }
    }
    Ok(())
}
