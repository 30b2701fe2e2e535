//! Addresses: add one with the flags tether needs, delete one, list those of a link.

use super::{family, Netlink, NlError};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol, AddressScope,
};
use netlink_packet_route::RouteNetlinkMessage;

/// How an address is added.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddrFlags {
    /// IFA_F_NOPREFIXROUTE: no kernel route for the prefix (ptp routes the subnet via the
    /// gateway itself; saves deleting the kernel's route afterwards).
    pub no_prefix_route: bool,
    /// Let IPv6 duplicate address detection run (the address is tentative until it passes).
    /// Off by default: see [`Netlink::add_addr`].
    pub dad: bool,
    /// IPv4: scope host, so the kernel never picks it as another link's source address
    /// (`inet_select_addr` falls back to `lo`'s addresses first); a route may still name it.
    pub host_scope: bool,
    /// IFA_PROTO (Linux 6.1; older kernels ignore it): who added the address.
    pub protocol: Option<u8>,
}

/// An address as read back, with the DAD state of IPv6 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrInfo {
    /// Address and prefix.
    pub net: IpNet,
    /// IFA_F_TENTATIVE: DAD has not finished.
    pub tentative: bool,
    /// IFA_F_DADFAILED: another host on the link has it.
    pub dad_failed: bool,
    /// IFA_PROTO, on kernels that report it (6.1 and later).
    pub protocol: Option<u8>,
}

/// The RTM_NEWADDR message for [`Netlink::add_addr`] (send it with NLM_F_CREATE | NLM_F_EXCL).
pub(crate) fn new_address(index: u32, addr: IpNet, flags: AddrFlags) -> RouteNetlinkMessage {
    let ip = addr.addr();
    let mut msg = AddressMessage::default();
    msg.header.family = family(&ip);
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    let mut all = AddressFlags::empty();
    if ip.is_ipv6() && !flags.dad {
        msg.header.flags = AddressHeaderFlags::Nodad;
        all |= AddressFlags::Nodad;
    }
    if flags.no_prefix_route {
        all |= AddressFlags::Noprefixroute;
    }
    if flags.host_scope && ip.is_ipv4() {
        msg.header.scope = AddressScope::Host;
    }
    if let Some(protocol) = flags.protocol {
        msg.attributes.push(AddressAttribute::Protocol(AddressProtocol::from(protocol)));
    }
    msg.attributes.push(AddressAttribute::Local(ip));
    msg.attributes.push(AddressAttribute::Address(ip));
    if let (IpNet::V4(v4), true) = (addr, addr.prefix_len() < 31) {
        msg.attributes.push(AddressAttribute::Broadcast(v4.broadcast()));
    }
    if !all.is_empty() {
        msg.attributes.push(AddressAttribute::Flags(all));
    }
    RouteNetlinkMessage::NewAddress(msg)
}

/// The RTM_GETADDR dump of link `index`'s addresses, every family.
pub(crate) fn address_dump(index: u32) -> RouteNetlinkMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    RouteNetlinkMessage::GetAddress(msg)
}

impl Netlink {
    /// Add `addr` (address with its prefix) to link `index`. IPv6 addresses are added with
    /// IFA_F_NODAD: they are usable at once instead of after ~1-2 s of duplicate address
    /// detection, which is what makes a dual-stack ADD take milliseconds (the addresses come
    /// from IPAM, which guarantees uniqueness on this link) unless `flags.dad` asks for DAD.
    pub async fn add_addr(&self, index: u32, addr: IpNet, flags: AddrFlags) -> Result<(), NlError> {
        self.ack(new_address(index, addr, flags), NLM_F_CREATE | NLM_F_EXCL).await
    }

    /// Delete `addr` from link `index`. EADDRNOTAVAIL when it is not there.
    pub async fn delete_addr(&self, index: u32, addr: IpNet) -> Result<(), NlError> {
        let ip = addr.addr();
        let mut msg = AddressMessage::default();
        msg.header.family = family(&ip);
        msg.header.prefix_len = addr.prefix_len();
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        self.ack(RouteNetlinkMessage::DelAddress(msg), 0).await
    }

    /// The addresses of link `index` (all families).
    pub async fn addrs_of(&self, index: u32) -> Result<Vec<IpNet>, NlError> {
        Ok(self.addr_infos(index).await?.into_iter().map(|a| a.net).collect())
    }

    /// The addresses of link `index` with their DAD state: a dump the kernel filters by the link
    /// (the socket checks strictly, see `Netlink::connect`), so its cost does not grow with the
    /// node's other links. The filter is applied here again for the record.
    pub async fn addr_infos(&self, index: u32) -> Result<Vec<AddrInfo>, NlError> {
        let replies = self.dump(address_dump(index)).await?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let prefix = a.header.prefix_len;
                    // IFA_FLAGS (32 bit) when present, else the 8-bit header flags.
                    let mut flags = AddressFlags::from_bits_retain(u32::from(a.header.flags.bits()));
                    let (mut net, mut protocol) = (None, None);
                    for attr in a.attributes {
                        match attr {
                            AddressAttribute::Local(ip) => net = IpNet::new(ip, prefix).ok(),
                            AddressAttribute::Address(ip) if net.is_none() => net = IpNet::new(ip, prefix).ok(),
                            AddressAttribute::Flags(f) => flags = f,
                            AddressAttribute::Protocol(p) => protocol = Some(u8::from(p)),
                            _ => {}
                        }
                    }
                    net.map(|net| AddrInfo {
                        net,
                        tentative: flags.contains(AddressFlags::Tentative),
                        dad_failed: flags.contains(AddressFlags::Dadfailed),
                        protocol,
                    })
                }
                _ => None,
            })
            .collect())
    }
}
