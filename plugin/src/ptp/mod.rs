//! Mode `ptp`: a routed veth per container (the reference `ptp` topology, with the gateway held
//! once by the node: [`gateway`]). [`plan`] decides what goes where; [`wire`] applies it;
//! [`check_node`] is the node half of CHECK.

mod apply;
pub mod gateway;
mod plan;
#[cfg(test)]
mod root_tests;
mod users;

pub use plan::{plan, PtpPlan};

use crate::attach::{Attachment, Undo};
use crate::context::Context;
use crate::error::{Doing, Error, Result};
use crate::netlink::link::Link;
use crate::netlink::Netlink;
use crate::{sysctl, veth};
use conf::{Interface, IpConfig, NetResult};
use futures::future::join_all;
use ipnet::IpNet;
use std::net::IpAddr;

/// Wire the attachment and build the result.
pub async fn wire(ctx: &Context, att: &Attachment<'_>, allocated: &NetResult, undo: &mut Undo) -> Result<NetResult> {
    let plan = plan(allocated)?;
    let has_v4 = plan.container_addrs.iter().any(|a| a.addr().is_ipv4());
    let has_v6 = plan.container_addrs.iter().any(|a| a.addr().is_ipv6());
    sysctl::enable_forwarding(has_v4, has_v6)?;
    let (host, container) = veth::create_pair(&ctx.node, att, undo, None, has_v6).await?;
    apply::configure(ctx, att, &plan, allocated, (&host, &container), undo).await?;
    if has_v6 && host.accept_ra.is_some_and(|ra| ra != 0) {
        // The node end must not learn routes from router advertisements a container sends
        // (plugins#484): the reference sets the same. (Without IPv6 there is none to learn.)
        sysctl::set(&format!("net/ipv6/conf/{}/accept_ra", host.name), "0")?;
    }
    if att.conf.ip_masq {
        undo.masq = true;
        ctx.firewall.masquerade(att.owner(), &allocated.ips, &att.conf.non_masquerade)?;
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

/// CHECK on the node: the node end exists, carries the network's group (when isolated), each gateway
/// is an address of the node, and each container address is routed into the node end.
pub async fn check_node(node: &Netlink, host_veth: &str, group: u32, ips: &[IpNet], gateways: &[IpAddr]) -> Result<()> {
    let node_end = node
        .link_by_name(host_veth)
        .await
        .doing(format!("read {host_veth}"))?
        .ok_or_else(|| Error::drift(format!("node interface {host_veth} is missing")))?;
    if group != 0 && node_end.group != group {
        return Err(Error::drift(format!(
            "node interface {host_veth} is in group {:#x}, not {group:#x}",
            node_end.group
        )));
    }
    // Before the routes: an IPv4 host route goes with the gateway it names as its source.
    let local = join_all(gateways.iter().map(|gw| node.is_local(*gw))).await;
    for (gw, local) in gateways.iter().zip(local) {
        if !local.doing(format!("look up gateway {gw} on the node"))? {
            return Err(Error::drift(format!("gateway {gw} is no address of the node")));
        }
    }
    // Only ptp's host routes lead into the node end, so a lookup that ends there is ours.
    let lookups = join_all(ips.iter().map(|ip| node.route_oif(ip.addr()))).await;
    for (ip, oif) in ips.iter().zip(lookups) {
        let oif = oif.doing(format!("look up the node route to {}", ip.addr()))?;
        if oif != Some(node_end.index) {
            return Err(Error::drift(format!("node route to {} via {host_veth} is missing", ip.addr())));
        }
    }
    Ok(())
}
