//! The ptp plan: which addresses and routes go where, pure, from the IPAM result.
//!
//! The topology is the reference `ptp` plugin's, so existing setups behave the same:
//! - container: each address without its prefix route; `<gw>/32 dev eth0 scope link src <ip>`;
//!   `<subnet> via <gw> src <ip>` (everything goes through the node, even the neighbours, so the
//!   node sees and routes all traffic); IPAM's routes via the gateway of their family;
//! - node: `<ip>/32 dev <node end> scope host src <gw>`, and the gateway itself held once by the
//!   node, on `lo` (the reference puts it on every node end instead: see `super::gateway` for why
//!   tether does not); the container reaches it through a permanent neighbour entry. An IPv6
//!   link-local gateway stays on the node end, as in the reference: the kernel answers for a
//!   `fe80::/10` address, and accepts it as a route's source, only on its own link.

use crate::error::{Error, Result};
use crate::netlink::route::{scope, RouteSpec};
use conf::NetResult;
use ipnet::IpNet;
use std::net::IpAddr;

/// What to configure for one ptp attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtpPlan {
    /// Addresses of the container end (with their subnet prefix).
    pub container_addrs: Vec<IpNet>,
    /// Routes in the container, through the container end, in order.
    pub container_routes: Vec<RouteSpec>,
    /// The gateways the node holds for it (on `lo`), one per family at most.
    pub gateways: Vec<IpAddr>,
    /// Link-local IPv6 gateways, on the node end.
    pub node_end_gateways: Vec<IpNet>,
    /// Routes on the node, through the node end.
    pub host_routes: Vec<RouteSpec>,
}

/// `ip` alone: `/32` or `/128`.
pub(super) fn host_prefix(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// Plan a ptp attachment from the IPAM result.
///
/// # Errors
/// Code 7 when IPAM returned no address, or an address without a gateway.
pub fn plan(ipam: &NetResult) -> Result<PtpPlan> {
    if ipam.ips.is_empty() {
        return Err(Error::config("IPAM plugin returned missing IP config"));
    }
    let mut p = PtpPlan {
        container_addrs: vec![],
        container_routes: vec![],
        gateways: vec![],
        node_end_gateways: vec![],
        host_routes: vec![],
    };
    for ip in &ipam.ips {
        let addr = ip.address.addr();
        let gw = ip.gateway.ok_or_else(|| {
            Error::config(format!("IPAM returned {} without a gateway", ip.address))
                .hint("ptp routes the container through a gateway address the node holds")
        })?;
        p.container_addrs.push(ip.address);
        p.container_routes.push(RouteSpec {
            src: Some(addr),
            scope: scope::LINK,
            ..RouteSpec::via(host_prefix(gw), None)
        });
        if ip.address.prefix_len() < ip.address.max_prefix_len() {
            p.container_routes.push(RouteSpec { src: Some(addr), ..RouteSpec::via(ip.address.trunc(), Some(gw)) });
        }
        let src = if is_link_local(gw) {
            if !p.node_end_gateways.contains(&host_prefix(gw)) {
                p.node_end_gateways.push(host_prefix(gw));
            }
            None
        } else {
            if !p.gateways.contains(&gw) {
                p.gateways.push(gw);
            }
            Some(gw)
        };
        p.host_routes.push(RouteSpec { scope: scope::HOST, src, ..RouteSpec::via(host_prefix(addr), None) });
    }
    p.container_routes.extend(ipam.routes.iter().map(|route| RouteSpec::from_ipam(route, &ipam.ips)));
    Ok(p)
}

/// An IPv6 link-local address (`fe80::/10`).
fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::{IpConfig, Route};

    fn ipam(ips: &[(&str, &str)], routes: &[&str]) -> NetResult {
        NetResult {
            ips: ips
                .iter()
                .map(|(a, g)| IpConfig {
                    address: a.parse().unwrap(),
                    gateway: Some(g.parse().unwrap()),
                    interface: None,
                })
                .collect(),
            routes: routes.iter().map(|d| Route::new(d.parse().unwrap(), None)).collect(),
            ..NetResult::default()
        }
    }

    #[test]
    fn ipv4_topology_matches_the_reference() {
        let p = plan(&ipam(&[("198.18.1.5/24", "198.18.1.1")], &["0.0.0.0/0"])).unwrap();
        assert_eq!(p.container_addrs, vec!["198.18.1.5/24".parse::<IpNet>().unwrap()]);
        let r = &p.container_routes;
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].dst.to_string(), r[0].gw, r[0].scope), ("198.18.1.1/32".into(), None, scope::LINK));
        assert_eq!(r[0].src, Some("198.18.1.5".parse().unwrap()));
        assert_eq!((r[1].dst.to_string(), r[1].gw), ("198.18.1.0/24".into(), Some("198.18.1.1".parse().unwrap())));
        assert_eq!((r[2].dst.to_string(), r[2].gw), ("0.0.0.0/0".into(), Some("198.18.1.1".parse().unwrap())));
        assert_eq!(p.gateways, vec!["198.18.1.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.host_routes.len(), 1);
        assert_eq!((p.host_routes[0].dst.to_string(), p.host_routes[0].scope), ("198.18.1.5/32".into(), scope::HOST));
        assert_eq!(p.host_routes[0].src, Some("198.18.1.1".parse().unwrap()), "the node answers from the gateway");
    }

    #[test]
    fn dual_stack_routes_take_the_gateway_of_their_family() {
        let p = plan(&ipam(
            &[("198.18.1.5/24", "198.18.1.1"), ("fd7e:7e7e:1::5/64", "fd7e:7e7e:1::1")],
            &["0.0.0.0/0", "::/0"],
        ))
        .unwrap();
        let default6 = p.container_routes.iter().find(|r| r.dst.to_string() == "::/0").unwrap();
        assert_eq!(default6.gw, Some("fd7e:7e7e:1::1".parse().unwrap()));
        assert!(p.gateways.contains(&"fd7e:7e7e:1::1".parse().unwrap()));
        let host6 = p.host_routes.iter().find(|r| r.dst.to_string() == "fd7e:7e7e:1::5/128").unwrap();
        assert_eq!(host6.src, Some("fd7e:7e7e:1::1".parse().unwrap()));
    }

    #[test]
    fn ipv6_only_and_a_single_address_subnet() {
        let p = plan(&ipam(&[("fd7e:7e7e:1::5/64", "fd7e:7e7e:1::1")], &["::/0"])).unwrap();
        let dsts: Vec<String> = p.container_routes.iter().map(|r| r.dst.to_string()).collect();
        assert_eq!(dsts, ["fd7e:7e7e:1::1/128", "fd7e:7e7e:1::/64", "::/0"]);
        assert_eq!(p.container_routes[0].src, Some("fd7e:7e7e:1::5".parse().unwrap()));
        assert_eq!(p.gateways, vec!["fd7e:7e7e:1::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.host_routes[0].dst.to_string(), "fd7e:7e7e:1::5/128");
        // A /32 from IPAM: no subnet to route via the gateway, only the gateway on-link.
        let p = plan(&ipam(&[("198.18.1.5/32", "198.18.1.1")], &[])).unwrap();
        assert_eq!(p.container_routes.len(), 1);
        assert_eq!(p.container_routes[0].dst.to_string(), "198.18.1.1/32");
    }

    #[test]
    fn two_addresses_behind_one_gateway_hold_it_once() {
        let p = plan(&ipam(&[("198.18.1.5/24", "198.18.1.1"), ("198.18.1.6/24", "198.18.1.1")], &[])).unwrap();
        assert_eq!(p.gateways.len(), 1);
        assert_eq!(p.host_routes.len(), 2);
    }

    #[test]
    fn a_link_local_gateway_stays_on_the_node_end() {
        let p = plan(&ipam(&[("198.18.1.5/24", "198.18.1.1"), ("fd7e:7e7e:1::5/64", "fe80::1")], &["::/0"])).unwrap();
        assert_eq!(p.gateways, vec!["198.18.1.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.node_end_gateways, vec!["fe80::1/128".parse::<IpNet>().unwrap()]);
        let host6 = p.host_routes.iter().find(|r| r.dst.to_string() == "fd7e:7e7e:1::5/128").unwrap();
        assert_eq!(host6.src, None, "a link-local source is refused on another link");
        let default6 = p.container_routes.iter().find(|r| r.dst.to_string() == "::/0").unwrap();
        assert_eq!(default6.gw, Some("fe80::1".parse().unwrap()));
    }

    #[test]
    fn route_fields_of_1_1_are_kept() {
        let mut r = ipam(&[("198.18.1.5/24", "198.18.1.1")], &[]);
        r.routes.push(Route {
            priority: Some(5),
            table: Some(100),
            mtu: Some(1400),
            ..Route::new("198.19.0.0/16".parse().unwrap(), Some("198.18.1.9".parse().unwrap()))
        });
        let p = plan(&r).unwrap();
        let last = p.container_routes.last().unwrap();
        assert_eq!((last.priority, last.table, last.mtu), (Some(5), Some(100), Some(1400)));
        assert_eq!(last.gw, Some("198.18.1.9".parse().unwrap()));
    }

    #[test]
    fn missing_gateway_or_addresses_are_errors() {
        assert_eq!(plan(&NetResult::default()).err().map(|e| e.to_cni().code), Some(7));
        let mut r = ipam(&[("198.18.1.5/24", "198.18.1.1")], &[]);
        r.ips[0].gateway = None;
        assert_eq!(plan(&r).err().map(|e| e.to_cni().code), Some(7));
    }
}
