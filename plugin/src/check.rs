//! CHECK: compare the live state with `prevResult` and name the first thing that drifted.
//!
//! Checked for every mode: the container interface (exists, is a veth, MAC as reported), each of
//! its addresses, each reported route, the network's isolation element, and, when `ipMasq` is
//! set, the masquerade elements and the network's exclusions (`nonMasqueradeCIDRs`). The node
//! side is the mode's (`ptp::check_node`, `bridge::check_node`). IPAM's own CHECK runs first.

use crate::bridge::check::Expected;
use crate::config::{Mode, PluginConf};
use crate::ipam::Ipam;
use crate::netlink::{route, Netlink, NlContext};
use crate::netns::Netns;
use crate::{bridge, isolate, masq, ptp, runtime, veth};
use conf::{CniError, CniResult, Command, ErrorCode, Request};
use ipnet::IpNet;

/// A CHECK failure: the live state differs from `prevResult` (code 105).
pub(crate) fn drift(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::Drift, msg)
}

/// CHECK for every mode.
pub fn check(request: &Request) -> CniResult<()> {
    let conf = PluginConf::from_request(request)?;
    let inv = &request.invocation;
    let network = request.config.name.as_str();
    let prev = request
        .config
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(ErrorCode::InvalidConfig, "required prevResult missing"))?;
    Ipam::of(request).run(request, Command::Check)?;
    let netns = Netns::of(request)?;
    let sandbox = netns.path().display().to_string();
    let index = prev
        .interface_index(&inv.ifname, Some(&sandbox))
        .ok_or_else(|| drift(format!("prevResult lists no interface {} in sandbox {sandbox}", inv.ifname)))?;
    let expected = &prev.interfaces[index];
    let ips: Vec<IpNet> =
        prev.ips.iter().filter(|ip| ip.interface.is_none_or(|i| i == index)).map(|ip| ip.address).collect();
    let host_veth = veth::host_veth_name(network, &inv.container_id, &inv.ifname);
    let group = isolate::group(network, &conf)?;

    runtime::build()?.block_on(async {
        let host = Netlink::connect()?;
        let ctr = {
            let _inside = netns.enter()?;
            Netlink::connect()?
        };
        let link = ctr
            .link_by_name(&inv.ifname)
            .await
            .or_cni(format!("read {}", inv.ifname))?
            .ok_or_else(|| drift(format!("interface {} is missing in {sandbox}", inv.ifname)))?;
        if link.kind.as_deref() != Some("veth") {
            return Err(drift(format!("interface {} is not a veth", inv.ifname)));
        }
        if let (Some(want), Some(have)) = (&expected.mac, link.mac_string()) {
            if !want.eq_ignore_ascii_case(&have) {
                return Err(drift(format!("interface {} has MAC {have}, prevResult says {want}", inv.ifname)));
            }
        }
        let addrs = ctr.addrs_of(link.index).await.or_cni(format!("read addresses of {}", inv.ifname))?;
        for ip in &ips {
            if !addrs.contains(ip) {
                return Err(drift(format!("address {ip} is missing from {}", inv.ifname)));
            }
        }
        // Where the result says: its table (the main one without `table`), through this interface.
        let routes = ctr.routes().await.or_cni("read container routes")?;
        for want in &prev.routes {
            let table = want.table.unwrap_or(route::MAIN_TABLE);
            let found = routes.iter().any(|r| {
                r.dst == want.dst.trunc()
                    && (want.gw.is_none() || r.gw == want.gw)
                    && r.table == table
                    && r.oif == Some(link.index)
            });
            if !found {
                return Err(drift(format!(
                    "route to {} is missing from table {table} of the container (through {})",
                    want.dst, inv.ifname
                )));
            }
        }
        match conf.mode {
            Mode::Ptp => ptp::check_node(&host, &host_veth, group, &ips).await,
            Mode::Bridge => {
                let want = Expected {
                    network,
                    container_id: &inv.container_id,
                    ifname: &inv.ifname,
                    host_veth: &host_veth,
                    group,
                    container: &link,
                };
                bridge::check_node(&host, &conf.bridge, prev, &want).await
            }
        }
    })?;

    isolate::check(network, &conf)?;
    if conf.ip_masq {
        let masqueraded = masq::list(network, &inv.container_id, &inv.ifname)?;
        for ip in &ips {
            if !masqueraded.contains(&ip.addr()) {
                return Err(drift(format!("masquerade state for {} is missing", ip.addr())));
            }
        }
        masq::check_excluded(network, &conf.non_masquerade)?;
    }
    Ok(())
}
