//! Links: look one up by name or index, create a veth pair whose peer is born inside another
//! namespace, delete by name.

use super::{Netlink, NlError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridge, InfoBridgePort, InfoData, InfoKind,
    InfoPortData, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, State,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::RawFd;

/// BR_STATE_DISABLED: a bridge port that does not forward (no carrier yet, or the bridge is down).
pub const PORT_DISABLED: u8 = 0;

/// What tether needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Hardware address, if any.
    pub mac: Option<Vec<u8>>,
    /// MTU.
    pub mtu: Option<u32>,
    /// `IFLA_INFO_KIND` (`veth`, `bridge`, ...).
    pub kind: Option<String>,
    /// Index of the master (bridge) it is enslaved to.
    pub master: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// IFF_PROMISC.
    pub promisc: bool,
    /// Link group (`IFLA_GROUP`).
    pub group: u32,
    /// `IFLA_IFALIAS`, the free-form description tether marks its node ends with.
    pub alias: Option<String>,
    /// The id of the namespace the peer (of a veth) lives in, as this namespace names it
    /// (`IFLA_LINK_NETNSID`); `None` when the peer is in the same namespace.
    pub peer_netnsid: Option<i32>,
    /// IPv6 address generation mode (`IFLA_INET6_ADDR_GEN_MODE`; 1 = none), when IPv6 is on.
    pub addr_gen_mode: Option<u8>,
    /// IPv4 `arp_ignore` of the link.
    pub arp_ignore: Option<i32>,
    /// IPv6 `accept_ra` of the link, when IPv6 is on (read here rather than from `/proc/sys`, see
    /// [`crate::sysctl`]).
    pub accept_ra: Option<i32>,
    /// Bridge port state (`IFLA_BRPORT_STATE`) when the link is a bridge port.
    pub port_state: Option<u8>,
    /// A bridge's `vlan_filtering`.
    pub vlan_filtering: Option<bool>,
    /// A bridge's `vlan_default_pvid` (the VLAN every new port gets; 0 = none).
    pub vlan_default_pvid: Option<u16>,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: None,
            kind: None,
            master: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            promisc: msg.header.flags.contains(LinkFlags::Promisc),
            group: 0,
            alias: None,
            peer_netnsid: None,
            addr_gen_mode: None,
            arp_ignore: None,
            accept_ra: None,
            port_state: None,
            vlan_filtering: None,
            vlan_default_pvid: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(a) => link.mac = Some(a),
                LinkAttribute::Mtu(m) => link.mtu = Some(m),
                LinkAttribute::Controller(m) => link.master = Some(m),
                LinkAttribute::Group(g) => link.group = g,
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(id),
                LinkAttribute::LinkInfo(infos) => infos.into_iter().for_each(|i| link.read_info(i)),
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        match spec {
                            AfSpecUnspec::Inet6(inet6) => {
                                for a in inet6 {
                                    match a {
                                        AfSpecInet6::AddrGenMode(mode) => link.addr_gen_mode = Some(u8::from(&mode)),
                                        AfSpecInet6::DevConf(conf) => link.accept_ra = Some(conf.accept_ra),
                                        _ => {}
                                    }
                                }
                            }
                            AfSpecUnspec::Inet(inet) => {
                                for a in inet {
                                    if let AfSpecInet::DevConf(conf) = a {
                                        link.arp_ignore = Some(conf.arp_ignore);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    fn read_info(&mut self, info: LinkInfo) {
        match info {
            LinkInfo::Kind(kind) => self.kind = Some(kind.to_string()),
            LinkInfo::Data(InfoData::Bridge(attrs)) => {
                for a in attrs {
                    match a {
                        InfoBridge::VlanFiltering(on) => self.vlan_filtering = Some(on),
                        InfoBridge::VlanDefaultPvid(pvid) => self.vlan_default_pvid = Some(pvid),
                        _ => {}
                    }
                }
            }
            LinkInfo::PortData(InfoPortData::BridgePort(attrs)) => {
                for a in attrs {
                    if let InfoBridgePort::State(state) = a {
                        self.port_state = Some(u8::from(state));
                    }
                }
            }
            _ => {}
        }
    }

    /// True when the link is a bridge.
    pub fn is_bridge(&self) -> bool {
        self.kind.as_deref() == Some("bridge")
    }

    /// True when IPv6 generates no address on it (no link-local either).
    pub fn addr_gen_none(&self) -> bool {
        self.addr_gen_mode == Some(u8::from(&In6AddrGenMode::None))
    }

    /// The MAC as `aa:bb:cc:dd:ee:ff`, as CNI results write it.
    pub fn mac_string(&self) -> Option<String> {
        self.mac.as_deref().map(crate::mac::format)
    }
}

/// Options for the two ends of a new veth pair.
#[derive(Debug, Clone, Default)]
pub struct VethSpec<'a> {
    /// Name of the end that stays in this namespace.
    pub host_name: &'a str,
    /// Name of the end created in the peer namespace.
    pub peer_name: &'a str,
    /// The peer namespace (`IFLA_NET_NS_FD`); `None` keeps the peer in this namespace.
    pub peer_netns_fd: Option<RawFd>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// MAC of the peer end.
    pub peer_mac: Option<Vec<u8>>,
    /// Enslave the host end to this master at creation.
    pub host_master: Option<u32>,
    /// Link group of the host end (`IFLA_GROUP`) and of the peer when it stays here.
    pub host_group: Option<u32>,
}

/// RTM_GETLINK of the link with index `index`.
pub(crate) fn get_by_index(index: u32) -> RouteNetlinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(without_stats());
    RouteNetlinkMessage::GetLink(msg)
}

/// RTM_GETLINK of the link called `name`.
pub(crate) fn get_by_name(name: &str) -> RouteNetlinkMessage {
    let mut msg = name_only(name);
    msg.attributes.push(without_stats());
    RouteNetlinkMessage::GetLink(msg)
}

/// `IFLA_EXT_MASK` with RTEXT_FILTER_SKIP_STATS: tether reads no counter, and without them a link
/// reply is about half its size (the link's, IPv6's and ICMPv6's statistics), less for the kernel
/// to fill and for us to parse (callgrind of one ADD: link parsing was a fifth of its
/// instructions).
fn without_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

/// One transmit and one receive queue, asked for at creation. Without them a veth end is made
/// with a queue per possible CPU and then cut down to one in use (`veth_init_queues`), and a
/// registered device losing transmit queues waits for an RCU grace period under the rtnl lock
/// (`netif_set_real_num_tx_queues` -> `synchronize_net`): `perf record` of ptp ADDs showed it in
/// every pair creation. One queue in use is what either way gives; what is lost is raising the
/// count later with `ethtool -L`.
fn one_queue_each() -> [LinkAttribute; 2] {
    [LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)]
}

/// RTM_SETLINK that sets link `index` up.
pub(crate) fn set_up_message(index: u32) -> RouteNetlinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    RouteNetlinkMessage::SetLink(msg)
}

/// The link in the replies to a get, if any.
pub(crate) fn link_of(replies: Vec<RouteNetlinkMessage>) -> Option<Link> {
    replies.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
        _ => None,
    })
}

/// Whether the link in the replies to a get is operationally up (`IFLA_OPERSTATE` = UP).
pub(crate) fn oper_up(replies: &[RouteNetlinkMessage]) -> bool {
    replies.iter().any(|m| match m {
        RouteNetlinkMessage::NewLink(l) => {
            l.attributes.iter().any(|a| matches!(a, LinkAttribute::OperState(State::Up)))
        }
        _ => false,
    })
}

/// RTM_SETLINK of the link called `name` that sets its alias (`IFLA_IFALIAS`) and, with
/// `no_ipv6_addresses`, its IPv6 address generation mode to none (no link-local address, so no
/// `fe80::/64` route either).
pub(crate) fn mark_message(name: &str, alias: &str, no_ipv6_addresses: bool) -> RouteNetlinkMessage {
    let mut msg = name_only(name);
    msg.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
    if no_ipv6_addresses {
        let none = AfSpecInet6::AddrGenMode(In6AddrGenMode::None);
        msg.attributes.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![none])]));
    }
    RouteNetlinkMessage::SetLink(msg)
}

fn name_only(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

impl Netlink {
    /// The link called `name`, or `None`.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>, NlError> {
        match self.get(get_by_name(name)).await {
            Ok(replies) => Ok(link_of(replies)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link with index `index`, or `None`.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>, NlError> {
        match self.get(get_by_index(index)).await {
            Ok(replies) => Ok(link_of(replies)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a veth pair in ONE request: the host end here, up; the peer directly inside the
    /// peer namespace, so a container-side name such as `eth0` never exists on the node.
    /// Fails with EEXIST when either name is taken; then nothing was created.
    pub async fn create_veth(&self, spec: &VethSpec<'_>) -> Result<(), NlError> {
        let mut peer = name_only(spec.peer_name);
        match (spec.peer_netns_fd, spec.host_group) {
            (Some(fd), _) => peer.attributes.push(LinkAttribute::NetNsFd(fd)),
            (None, Some(group)) => peer.attributes.push(LinkAttribute::Group(group)),
            (None, None) => {}
        }
        if let Some(mtu) = spec.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = &spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.clone()));
        }
        peer.attributes.extend(one_queue_each());
        // The peer cannot be created up: veth_newlink configures it before the pair is linked,
        // and veth_open then fails with ENOTCONN (seen on 6.x; `ip link add ... peer ... up`
        // fails the same way). The caller sets it up once addresses are in place.
        let mut host = name_only(spec.host_name);
        host.header.flags = LinkFlags::Up;
        host.header.change_mask = LinkFlags::Up;
        if let Some(mtu) = spec.mtu {
            host.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(master) = spec.host_master {
            // Enslaved in the creation request itself: no second round trip.
            host.attributes.push(LinkAttribute::Controller(master));
        }
        if let Some(group) = spec.host_group {
            host.attributes.push(LinkAttribute::Group(group));
        }
        host.attributes.extend(one_queue_each());
        host.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(host), NLM_F_CREATE | NLM_F_EXCL).await
    }

    /// Every link of the namespace (a dump: for GC only, never on an ADD/DEL/CHECK path).
    pub async fn all_links(&self) -> Result<Vec<Link>, NlError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(without_stats());
        let replies = self.dump(RouteNetlinkMessage::GetLink(msg)).await?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Delete the link called `name`. A veth takes its peer with it, and routes and addresses
    /// go with their link.
    pub async fn delete_link(&self, name: &str) -> Result<(), NlError> {
        self.ack(RouteNetlinkMessage::DelLink(name_only(name)), 0).await
    }

    /// Bring the kernel's view of link `index` up to date and say whether it is operationally
    /// up (`IFLA_OPERSTATE` = UP).
    ///
    /// Why: a carrier change (a veth end going up turns the carrier on at both ends) is applied
    /// by the kernel's linkwatch work, which is rate-limited to once a second unless the event
    /// is "urgent" - and for a veth whose index equals its peer's (index 2 on both sides of a
    /// fresh node and container namespace) it is not. Until it runs, the link is operationally
    /// down, IPv6 treats it as not ready (no `ff00::/8` route, so the container drops the node's
    /// neighbour solicitations), and the end that came up first has no active qdisc. Seen here:
    /// without this, the first ping from the node to a fresh container's IPv6 address failed in
    /// 8 runs of 8 (a ping started 0.5 s later succeeded). Since Linux 6.8, RTM_GETLINK runs the
    /// pending linkwatch work of the device first (`rtnl_getlink` calls `linkwatch_sync_dev`),
    /// so one get per end makes the pair usable at once. Older kernels answer with the stale
    /// state: `false` then (ADD seeds the neighbours it needs on every kernel, so it does not
    /// depend on the answer).
    pub async fn sync_link_state(&self, index: u32) -> Result<bool, NlError> {
        Ok(oper_up(&self.get(get_by_index(index)).await?))
    }

    /// Set the link `index` up (ADD sends it in a `Batch`; the tests one by one).
    #[cfg(test)]
    pub async fn set_up(&self, index: u32) -> Result<(), NlError> {
        self.ack(set_up_message(index), 0).await
    }
}
