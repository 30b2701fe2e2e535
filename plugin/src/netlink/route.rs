//! Routes: add one described by a [`RouteSpec`], list the routes of a table.

use super::{family, Netlink, NlError};
use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::errno::Errno;
use std::net::IpAddr;

/// The main routing table (RT_TABLE_MAIN).
pub const MAIN_TABLE: u32 = 254;

/// A route to install, independent of the wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub gw: Option<IpAddr>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// Scope (0 universe, 253 link, 254 host).
    pub scope: u8,
    /// Metric.
    pub priority: Option<u32>,
    /// Table; main when `None`.
    pub table: Option<u32>,
    /// Route MTU.
    pub mtu: Option<u32>,
    /// Advertised MSS.
    pub advmss: Option<u32>,
}

impl RouteSpec {
    /// A route IPAM returned, with every 1.1 field kept; without `gw` it goes via the gateway of
    /// the first address of its family (the reference's rule).
    pub fn from_ipam(route: &conf::Route, ips: &[conf::IpConfig]) -> RouteSpec {
        let v4 = route.dst.addr().is_ipv4();
        let gw =
            route.gw.or_else(|| ips.iter().filter(|ip| ip.address.addr().is_ipv4() == v4).find_map(|ip| ip.gateway));
        RouteSpec {
            dst: route.dst.trunc(),
            gw,
            src: None,
            scope: route.scope.unwrap_or(scope::UNIVERSE),
            priority: route.priority,
            table: route.table,
            mtu: route.mtu,
            advmss: route.advmss,
        }
    }

    /// A route to `dst` via `gw`, scope universe.
    pub fn via(dst: IpNet, gw: Option<IpAddr>) -> RouteSpec {
        RouteSpec { dst, gw, src: None, scope: 0, priority: None, table: None, mtu: None, advmss: None }
    }
}

/// Scope values as the kernel numbers them.
pub mod scope {
    /// RT_SCOPE_UNIVERSE.
    pub const UNIVERSE: u8 = 0;
    /// RT_SCOPE_LINK.
    pub const LINK: u8 = 253;
    /// RT_SCOPE_HOST.
    pub const HOST: u8 = 254;
}

/// A route as read back from the kernel (for CHECK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub gw: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Table.
    pub table: u32,
}

/// The RTM_NEWROUTE message for [`Netlink::add_route`] (send it with NLM_F_CREATE | NLM_F_EXCL).
pub(crate) fn new_route(oif: u32, spec: &RouteSpec) -> RouteNetlinkMessage {
    let table = spec.table.unwrap_or(MAIN_TABLE);
    let mut msg = RouteMessage::default();
    msg.header = RouteHeader {
        address_family: family(&spec.dst.addr()),
        destination_prefix_length: spec.dst.prefix_len(),
        table: u8::try_from(table).unwrap_or(0),
        protocol: RouteProtocol::Boot,
        scope: RouteScope::from(spec.scope),
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    msg.attributes.push(RouteAttribute::Table(table));
    msg.attributes.push(RouteAttribute::Destination(RouteAddress::from(spec.dst.network())));
    msg.attributes.push(RouteAttribute::Oif(oif));
    if let Some(gw) = spec.gw {
        msg.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    if let Some(src) = spec.src {
        msg.attributes.push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    if let Some(p) = spec.priority {
        msg.attributes.push(RouteAttribute::Priority(p));
    }
    let mut metrics = Vec::new();
    if let Some(mtu) = spec.mtu {
        metrics.push(RouteMetric::Mtu(mtu));
    }
    if let Some(advmss) = spec.advmss {
        metrics.push(RouteMetric::Advmss(advmss));
    }
    if !metrics.is_empty() {
        msg.attributes.push(RouteAttribute::Metrics(metrics));
    }
    RouteNetlinkMessage::NewRoute(msg)
}

impl Netlink {
    /// Add `spec` through link `oif` (ADD sends it in a `Batch`; the tests one by one).
    #[cfg(test)]
    pub async fn add_route(&self, oif: u32, spec: &RouteSpec) -> Result<(), NlError> {
        self.ack(new_route(oif, spec), netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL).await
    }

    /// The output interface the node would use for `dst`, by a route lookup (`ip route get`):
    /// one targeted request, where a dump of every route would grow with the node's containers
    /// and could be cut short by concurrent changes. `None` when nothing routes it.
    pub async fn route_oif(&self, dst: IpAddr) -> Result<Option<u32>, NlError> {
        Ok(self.lookup(dst).await?.filter(|r| r.header.kind == RouteType::Unicast).and_then(|r| {
            r.attributes.into_iter().find_map(|a| if let RouteAttribute::Oif(i) = a { Some(i) } else { None })
        }))
    }

    /// Whether `addr` is an address of the node, on any link (a lookup answers with a `local`
    /// route).
    pub async fn is_local(&self, addr: IpAddr) -> Result<bool, NlError> {
        Ok(self.lookup(addr).await?.is_some_and(|r| r.header.kind == RouteType::Local))
    }

    /// The route the node would use for `dst` (`ip route get`); `None` when nothing routes it.
    async fn lookup(&self, dst: IpAddr) -> Result<Option<RouteMessage>, NlError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(&dst);
        msg.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        msg.attributes.push(RouteAttribute::Destination(RouteAddress::from(dst)));
        match self.get(RouteNetlinkMessage::GetRoute(msg)).await {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })),
            Err(e) if matches!(e.errno, Some(Errno::ENETUNREACH | Errno::EHOSTUNREACH)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every unicast route of both families (all tables).
    pub async fn routes(&self) -> Result<Vec<InstalledRoute>, NlError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            for reply in self.dump(RouteNetlinkMessage::GetRoute(req)).await? {
                let RouteNetlinkMessage::NewRoute(r) = reply else { continue };
                if r.header.kind != RouteType::Unicast {
                    continue;
                }
                let prefix = r.header.destination_prefix_length;
                let mut route = InstalledRoute {
                    dst: match family {
                        AddressFamily::Inet => IpNet::new(IpAddr::from([0, 0, 0, 0]), 0),
                        _ => IpNet::new(IpAddr::from([0u16; 8]), 0),
                    }
                    .unwrap_or_default(),
                    gw: None,
                    oif: None,
                    table: u32::from(r.header.table),
                };
                for attr in r.attributes {
                    match attr {
                        RouteAttribute::Destination(a) => {
                            if let Some(ip) = route_ip(a) {
                                route.dst = IpNet::new(ip, prefix).unwrap_or(route.dst);
                            }
                        }
                        RouteAttribute::Gateway(a) => route.gw = route_ip(a),
                        RouteAttribute::Oif(i) => route.oif = Some(i),
                        RouteAttribute::Table(t) => route.table = t,
                        _ => {}
                    }
                }
                out.push(route);
            }
        }
        Ok(out)
    }
}

fn route_ip(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
        _ => None,
    }
}
