//! Links: look one up by name, create a veth pair whose peer is born inside another namespace,
//! delete by name.

use super::{Netlink, NlError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::RawFd;

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
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(a) => link.mac = Some(a),
                LinkAttribute::Mtu(m) => link.mtu = Some(m),
                LinkAttribute::Controller(m) => link.master = Some(m),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    /// The MAC as `aa:bb:cc:dd:ee:ff`, as CNI results write it.
    pub fn mac_string(&self) -> Option<String> {
        self.mac.as_ref().map(|m| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
    }
}

/// Options for the two ends of a new veth pair.
#[derive(Debug, Clone, Default)]
pub struct VethSpec<'a> {
    /// Name of the end that stays in this namespace.
    pub host_name: &'a str,
    /// Name of the end created in the peer namespace.
    pub peer_name: &'a str,
    /// The peer namespace (`IFLA_NET_NS_FD`).
    pub peer_netns_fd: RawFd,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// MAC of the peer end.
    pub peer_mac: Option<Vec<u8>>,
    /// Enslave the host end to this master at creation.
    pub host_master: Option<u32>,
}

fn name_only(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

impl Netlink {
    /// The link called `name`, or `None`.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>, NlError> {
        match self.get(RouteNetlinkMessage::GetLink(name_only(name))).await {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a veth pair in ONE request: the host end here, up; the peer directly inside the
    /// peer namespace, so a container-side name such as `eth0` never exists on the node.
    /// Fails with EEXIST when either name is taken; then nothing was created.
    pub async fn create_veth(&self, spec: &VethSpec<'_>) -> Result<(), NlError> {
        let mut peer = name_only(spec.peer_name);
        peer.attributes.push(LinkAttribute::NetNsFd(spec.peer_netns_fd));
        if let Some(mtu) = spec.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = &spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.clone()));
        }
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
            host.attributes.push(LinkAttribute::Controller(master));
        }
        host.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(host), NLM_F_CREATE | NLM_F_EXCL).await
    }

    /// Delete the link called `name`. A veth takes its peer with it, and routes and addresses
    /// go with their link.
    pub async fn delete_link(&self, name: &str) -> Result<(), NlError> {
        self.ack(RouteNetlinkMessage::DelLink(name_only(name)), 0).await
    }

    /// Set the link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<(), NlError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.ack(RouteNetlinkMessage::SetLink(msg), 0).await
    }
}
