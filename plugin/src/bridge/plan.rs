//! The bridge plan, pure: from the IPAM result and the bridge settings, the result's addresses and
//! routes, what the container gets, which gateway addresses the bridge carries, and the port's
//! VLANs. Follows the reference `bridge` plugin (`calcGateways`, `setupVeth`) except where noted.

use super::config::BridgeConf;
use crate::error::{Error, Result};
use crate::netlink::bridge::PortVlan;
use crate::netlink::route::RouteSpec;
use conf::{IpConfig, NetResult, Route};
use ipnet::IpNet;
use std::net::IpAddr;

/// What to configure for one bridge attachment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BridgePlan {
    /// The result's `ips`: IPAM's, the gateway filled in when the bridge is the gateway, all
    /// pointing at the container interface (index 2).
    pub ips: Vec<IpConfig>,
    /// The result's `routes`: IPAM's, plus a default route per family for `isDefaultGateway`.
    pub routes: Vec<Route>,
    /// Addresses of the container interface (with their prefix: the on-link subnet route).
    pub container_addrs: Vec<IpNet>,
    /// Routes in the container, each once, gateways resolved.
    pub container_routes: Vec<RouteSpec>,
    /// `<gateway>/<prefix>` for the bridge (or the VLAN gateway interface).
    pub gateway_addrs: Vec<IpNet>,
    /// Enable IPv4 / IPv6 forwarding (the bridge is a gateway of that family).
    pub forward_v4: bool,
    /// See `forward_v4`.
    pub forward_v6: bool,
}

/// The first address of `net` after the network address (the reference's default gateway).
fn first_host(net: &IpNet) -> IpAddr {
    match net.trunc() {
        IpNet::V4(n) => IpAddr::V4(u32::from(n.network()).wrapping_add(1).into()),
        IpNet::V6(n) => IpAddr::V6(u128::from(n.network()).wrapping_add(1).into()),
    }
}

fn default_route(v4: bool) -> IpNet {
    if v4 {
        IpNet::V4(ipnet::Ipv4Net::default())
    } else {
        IpNet::V6(ipnet::Ipv6Net::default())
    }
}

/// Plan a bridge attachment. Without IPAM (`layer3` false) the plan is empty.
///
/// # Errors
/// Code 7 when IPAM returned no address, or when the gateway would be the container's address.
pub fn plan(ipam: &NetResult, conf: &BridgeConf, layer3: bool) -> Result<BridgePlan> {
    if !layer3 {
        return Ok(BridgePlan::default());
    }
    if ipam.ips.is_empty() {
        return Err(Error::config("IPAM plugin returned missing IP config"));
    }
    let mut p = BridgePlan { routes: ipam.routes.clone(), ..BridgePlan::default() };
    for ip in &ipam.ips {
        let v4 = ip.address.addr().is_ipv4();
        let gateway = match (ip.gateway, conf.is_gateway) {
            (Some(gw), _) => Some(gw),
            (None, true) => Some(first_host(&ip.address)),
            (None, false) => None,
        };
        if conf.is_gateway && gateway == Some(ip.address.addr()) {
            return Err(Error::config(format!("the gateway {} is the container's own address", ip.address.addr()))
                .hint("set the IPAM range's gateway, or start the range after it"));
        }
        p.ips.push(IpConfig { address: ip.address, gateway, interface: Some(2) });
        p.container_addrs.push(ip.address);
        if let (true, Some(gw)) = (conf.is_gateway, gateway) {
            let on_bridge = IpNet::new(gw, ip.address.prefix_len()).unwrap_or(IpNet::from(gw));
            if !p.gateway_addrs.contains(&on_bridge) {
                p.gateway_addrs.push(on_bridge);
            }
            if v4 {
                p.forward_v4 = true;
            } else {
                p.forward_v6 = true;
            }
        }
        // Deviation: an IPAM default route of the family without a gateway also counts. The
        // reference adds a second, identical default route then, and fails with EEXIST.
        let has_default = p.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4() == v4);
        if let (true, false, Some(gw)) = (conf.is_default_gateway, has_default, gateway) {
            p.routes.push(Route::new(default_route(v4), Some(gw)));
        }
    }
    for route in &p.routes {
        let spec = RouteSpec::from_ipam(route, &p.ips);
        if !p.container_routes.contains(&spec) {
            p.container_routes.push(spec);
        }
    }
    Ok(p)
}

/// A port's VLAN changes: what to remove, then what to add.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortVlans {
    /// VLANs to remove first (the bridge's default VLAN, unless kept or re-added).
    pub remove: Vec<u16>,
    /// VLANs to add (or whose flags to update).
    pub add: Vec<PortVlan>,
}

/// The VLANs of a new port: `vlan` as PVID untagged (or VLAN 1 when only trunks are given),
/// the trunks tagged, and the bridge's default VLAN (`default_pvid`, which a new port gets)
/// removed unless `preserveDefaultVlan`. The native VLAN wins over a trunk entry of the same ID
/// (the reference lets the later call win, which depends on the order of the keys).
pub fn port_vlans(conf: &BridgeConf, default_pvid: u16) -> PortVlans {
    if conf.vlan == 0 && conf.trunks.is_empty() {
        return PortVlans::default();
    }
    let native = if conf.vlan != 0 { conf.vlan } else { 1 };
    let mut add = vec![PortVlan { vid: native, pvid: true, untagged: true }];
    add.extend(conf.trunks.iter().filter(|&&v| v != native).map(|&vid| PortVlan { vid, pvid: false, untagged: false }));
    let readded = add.iter().any(|v| v.vid == default_pvid);
    let remove = if conf.preserve_default_vlan || default_pvid == 0 || readded { vec![] } else { vec![default_pvid] };
    PortVlans { remove, add }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(ips: &[(&str, Option<&str>)], routes: &[(&str, Option<&str>)]) -> NetResult {
        NetResult {
            ips: ips
                .iter()
                .map(|(a, g)| IpConfig {
                    address: a.parse().unwrap(),
                    gateway: g.map(|g| g.parse().unwrap()),
                    interface: None,
                })
                .collect(),
            routes: routes.iter().map(|(d, g)| Route::new(d.parse().unwrap(), g.map(|g| g.parse().unwrap()))).collect(),
            ..NetResult::default()
        }
    }

    fn gw_conf(default: bool) -> BridgeConf {
        BridgeConf { is_gateway: true, is_default_gateway: default, ..BridgeConf::default() }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn sealed_bridge_gets_no_gateway_address_and_no_forwarding() {
        let p = plan(&ipam(&[("198.18.20.5/24", Some("198.18.20.1"))], &[]), &BridgeConf::default(), true).unwrap();
        assert!(p.gateway_addrs.is_empty());
        assert!(!p.forward_v4 && !p.forward_v6);
        assert_eq!(p.container_addrs, vec![net("198.18.20.5/24")]);
        assert!(p.container_routes.is_empty(), "only the kernel's on-link subnet route");
        assert_eq!(p.ips[0].interface, Some(2));
        assert_eq!(p.ips[0].gateway, Some("198.18.20.1".parse().unwrap()), "IPAM's gateway is reported as given");
        // without IPAM's gateway, none is made up
        let p = plan(&ipam(&[("198.18.20.5/24", None)], &[]), &BridgeConf::default(), true).unwrap();
        assert_eq!(p.ips[0].gateway, None);
    }

    #[test]
    fn gateway_defaults_to_the_first_address_and_goes_on_the_bridge_with_the_prefix() {
        let p =
            plan(&ipam(&[("198.18.30.7/24", None), ("fd7e:7e7e:30::7/64", None)], &[]), &gw_conf(false), true).unwrap();
        assert_eq!(p.gateway_addrs, vec![net("198.18.30.1/24"), net("fd7e:7e7e:30::1/64")]);
        assert_eq!(p.ips[0].gateway, Some("198.18.30.1".parse().unwrap()));
        assert_eq!(p.ips[1].gateway, Some("fd7e:7e7e:30::1".parse().unwrap()));
        assert!(p.forward_v4 && p.forward_v6);
        assert!(p.routes.is_empty(), "isGateway alone adds no route");
        let p = plan(&ipam(&[("198.18.30.7/24", Some("198.18.30.254"))], &[]), &gw_conf(false), true).unwrap();
        assert_eq!(p.gateway_addrs, vec![net("198.18.30.254/24")], "IPAM's gateway wins");
    }

    #[test]
    fn default_gateway_adds_one_default_route_per_family_unless_ipam_has_one() {
        let p =
            plan(&ipam(&[("198.18.30.7/24", None), ("fd7e:7e7e:30::7/64", None)], &[]), &gw_conf(true), true).unwrap();
        let dsts: Vec<String> = p.routes.iter().map(|r| format!("{} {:?}", r.dst, r.gw)).collect();
        assert_eq!(dsts, ["0.0.0.0/0 Some(198.18.30.1)", "::/0 Some(fd7e:7e7e:30::1)"]);
        assert_eq!(p.container_routes.len(), 2);
        // IPAM's default with a gateway: kept, nothing added
        let p = plan(&ipam(&[("198.18.30.7/24", None)], &[("0.0.0.0/0", Some("198.18.30.9"))]), &gw_conf(true), true)
            .unwrap();
        assert_eq!(p.routes.len(), 1);
        assert_eq!(p.container_routes[0].gw, Some("198.18.30.9".parse().unwrap()));
        // IPAM's default without a gateway: installed through ours, once (the reference fails here)
        let p = plan(&ipam(&[("198.18.30.7/24", None)], &[("0.0.0.0/0", None)]), &gw_conf(true), true).unwrap();
        assert_eq!(p.routes.len(), 1);
        assert_eq!(p.container_routes.len(), 1);
        assert_eq!(p.container_routes[0].gw, Some("198.18.30.1".parse().unwrap()));
        // another family's default does not count
        let p = plan(&ipam(&[("198.18.30.7/24", None)], &[("::/0", None)]), &gw_conf(true), true).unwrap();
        assert!(p.routes.iter().any(|r| r.dst == net("0.0.0.0/0")));
    }

    #[test]
    fn errors_and_layer_two() {
        assert_eq!(plan(&NetResult::default(), &gw_conf(false), true).unwrap_err().to_cni().code, 7);
        assert_eq!(plan(&NetResult::default(), &gw_conf(true), false).unwrap(), BridgePlan::default());
        let e = plan(&ipam(&[("198.18.30.1/24", None)], &[]), &gw_conf(false), true).unwrap_err();
        assert!(e.to_cni().msg.contains("own address"), "{e}");
    }

    #[test]
    fn port_vlans_follow_the_reference() {
        let c = |vlan, trunks: &[u16], preserve| BridgeConf {
            vlan,
            trunks: trunks.to_vec(),
            preserve_default_vlan: preserve,
            ..BridgeConf::default()
        };
        let v = |vid, pvid| PortVlan { vid, pvid, untagged: pvid };
        assert_eq!(port_vlans(&c(0, &[], false), 1), PortVlans::default());
        assert_eq!(port_vlans(&c(100, &[], false), 1), PortVlans { remove: vec![1], add: vec![v(100, true)] });
        assert_eq!(port_vlans(&c(100, &[], true), 1), PortVlans { remove: vec![], add: vec![v(100, true)] });
        // trunks only: native VLAN 1, so the default VLAN is re-added rather than removed
        assert_eq!(
            port_vlans(&c(0, &[5, 6], false), 1),
            PortVlans { remove: vec![], add: vec![v(1, true), v(5, false), v(6, false)] }
        );
        assert_eq!(
            port_vlans(&c(7, &[7, 8], false), 1),
            PortVlans { remove: vec![1], add: vec![v(7, true), v(8, false)] }
        );
        // a bridge whose default VLAN is not 1, or none
        assert_eq!(port_vlans(&c(100, &[], false), 9).remove, vec![9]);
        assert_eq!(port_vlans(&c(100, &[], false), 0).remove, Vec::<u16>::new());
    }
}
