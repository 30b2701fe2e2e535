//! CHECK: compare the live state with `prevResult` and name the first thing that drifted.
//!
//! Checked for every mode: the container interface (exists, is a veth, MAC as reported), each of
//! its addresses, each reported route, the network's isolation element, and, when `ipMasq` is
//! set, the masquerade elements and the network's exclusions (`nonMasqueradeCIDRs`). The node
//! side is the mode's (`ptp::check_node`, `bridge::check_node`). IPAM's own CHECK runs first.

use crate::bridge::check::Expected;
use crate::config::{Mode, PluginConf};
use crate::context::Context;
use crate::error::{Doing, Error, Result};
use crate::firewall::Owner;
use crate::ipam::Ipam;
use crate::netlink::route;
use crate::netns::Netns;
use crate::{bridge, ptp, veth};
use conf::{Command, Request};
use ipnet::IpNet;
use std::net::IpAddr;

/// CHECK for every mode.
pub fn check(request: &Request) -> Result<()> {
    let conf = PluginConf::from_request(request)?;
    let inv = &request.invocation;
    let network = request.config.name.as_str();
    let owner = Owner { network, container_id: &inv.container_id, ifname: &inv.ifname };
    let prev = request.config.prev_result.as_ref().ok_or_else(|| Error::config("required prevResult missing"))?;
    Ipam::of(request).run(request, Command::Check)?;
    let netns = Netns::of(request)?;
    let sandbox = netns.path().display().to_string();
    let index = prev
        .interface_index(&inv.ifname, Some(&sandbox))
        .ok_or_else(|| Error::drift(format!("prevResult lists no interface {} in sandbox {sandbox}", inv.ifname)))?;
    let expected = &prev.interfaces[index];
    let own_ips: Vec<_> = prev.ips.iter().filter(|ip| ip.interface.is_none_or(|i| i == index)).collect();
    let ips: Vec<IpNet> = own_ips.iter().map(|ip| ip.address).collect();
    let mut gateways: Vec<IpAddr> = own_ips.iter().filter_map(|ip| ip.gateway).collect();
    gateways.sort_unstable();
    gateways.dedup();
    let host_veth = veth::host_veth_name(network, &inv.container_id, &inv.ifname);
    let ctx = Context::on_node()?;
    let ctr = ctx.connect_in(&netns)?;
    let group = ctx.firewall.isolation_group(network, conf.isolate)?;

    ctx.block_on(async {
        let link = ctr
            .link_by_name(&inv.ifname)
            .await
            .doing(format!("read {}", inv.ifname))?
            .ok_or_else(|| Error::drift(format!("interface {} is missing in {sandbox}", inv.ifname)))?;
        if link.kind.as_deref() != Some("veth") {
            return Err(Error::drift(format!("interface {} is not a veth", inv.ifname)));
        }
        if let (Some(want), Some(have)) = (&expected.mac, link.mac_string()) {
            if !want.eq_ignore_ascii_case(&have) {
                return Err(Error::drift(format!("interface {} has MAC {have}, prevResult says {want}", inv.ifname)));
            }
        }
        let addrs = ctr.addrs_of(link.index).await.doing(format!("read addresses of {}", inv.ifname))?;
        if let Some(ip) = ips.iter().find(|ip| !addrs.contains(ip)) {
            return Err(Error::drift(format!("address {ip} is missing from {}", inv.ifname)));
        }
        // Where the result says: its table (the main one without `table`), through this interface.
        let routes = ctr.routes().await.doing("read container routes")?;
        for want in &prev.routes {
            let table = want.table.unwrap_or(route::MAIN_TABLE);
            let found = routes.iter().any(|r| {
                r.dst == want.dst.trunc()
                    && (want.gw.is_none() || r.gw == want.gw)
                    && r.table == table
                    && r.oif == Some(link.index)
            });
            if !found {
                return Err(Error::drift(format!(
                    "route to {} is missing from table {table} of the container (through {})",
                    want.dst, inv.ifname
                )));
            }
        }
        match conf.mode {
            Mode::Ptp => ptp::check_node(&ctx.node, &host_veth, group, &ips, &gateways).await,
            Mode::Bridge => {
                let want = Expected { owner, host_veth: &host_veth, group, container: &link };
                bridge::check_node(&ctx.node, &ctx.firewall, &conf.bridge, prev, &want).await
            }
        }
    })?;

    ctx.firewall.check_isolation(network, conf.isolate)?;
    if conf.ip_masq {
        ctx.firewall.check_masquerade(owner, &ips, &conf.non_masquerade)?;
    }
    Ok(())
}
