//! Addresses: add one with the flags tether needs, list those of a link.

use super::{Netlink, NlError};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// How an address is added.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddrFlags {
    /// IFA_F_NOPREFIXROUTE: no kernel route for the prefix (ptp routes the subnet via the
    /// gateway itself; saves deleting the kernel's route afterwards).
    pub no_prefix_route: bool,
}

fn family(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

impl Netlink {
    /// Add `addr` (address with its prefix) to link `index`. IPv6 addresses are added with
    /// IFA_F_NODAD: they are usable at once instead of after ~1-2 s of duplicate address
    /// detection, which is what makes a dual-stack ADD take milliseconds (the addresses come
    /// from IPAM, which guarantees uniqueness on this link).
    pub async fn add_addr(&self, index: u32, addr: IpNet, flags: AddrFlags) -> Result<(), NlError> {
        let ip = addr.addr();
        let mut msg = AddressMessage::default();
        msg.header.family = family(&ip);
        msg.header.prefix_len = addr.prefix_len();
        msg.header.index = index;
        let mut all = AddressFlags::empty();
        if ip.is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
            all |= AddressFlags::Nodad;
        }
        if flags.no_prefix_route {
            all |= AddressFlags::Noprefixroute;
        }
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        if let (IpNet::V4(v4), true) = (addr, addr.prefix_len() < 31) {
            msg.attributes.push(AddressAttribute::Broadcast(v4.broadcast()));
        }
        if !all.is_empty() {
            msg.attributes.push(AddressAttribute::Flags(all));
        }
        self.ack(RouteNetlinkMessage::NewAddress(msg), NLM_F_CREATE | NLM_F_EXCL).await
    }

    /// The addresses of link `index` (all families).
    pub async fn addrs_of(&self, index: u32) -> Result<Vec<IpNet>, NlError> {
        let replies = self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default())).await?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let prefix = a.header.prefix_len;
                    a.attributes.into_iter().find_map(|attr| match attr {
                        AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => IpNet::new(ip, prefix).ok(),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }
}
