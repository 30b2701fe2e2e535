//! Bridges and their ports: create a bridge in one request, change several link settings in one
//! request, and set a port's VLANs (what `ip link add type bridge`, `ip link set ... type
//! bridge_slave` and `bridge vlan` do).
//!
//! Kernel facts these messages rely on (checked on 6.x):
//! - `IFLA_AF_SPEC` is refused in a creation request (EAFNOSUPPORT), so the IPv6 address
//!   generation mode is set right after creation. That is early enough: a bridge without ports
//!   and a veth end whose peer is down have no carrier, and IPv6 makes its link-local address
//!   only when carrier comes.
//! - A port's options (`IFLA_INFO_SLAVE_DATA`) are ignored in the request that creates the port,
//!   so they go in the same follow-up request as its address generation mode (an RTM_NEWLINK
//!   without NLM_F_CREATE is the kernel's changelink: slave data, then the generic settings).
//! - No `IFLA_INFO_KIND` in a port's request: the kernel would look up (and try to modprobe) a
//!   link type named after it.
//! - VLANs of a port are `IFLA_AF_SPEC`/`IFLA_BRIDGE_VLAN_INFO` in an AF_BRIDGE RTM_SETLINK
//!   (added or updated) or RTM_DELLINK (removed).

use super::{Netlink, NlError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecBridge, AfSpecInet, AfSpecInet6, AfSpecUnspec, BridgeVlanInfo, BridgeVlanInfoFlags, In6AddrGenMode,
    InetDevConf, InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// A bridge to create.
#[derive(Debug, Clone)]
pub struct BridgeSpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// MTU (before any port joins; the kernel then follows the smallest port).
    pub mtu: Option<u32>,
    /// A fixed MAC: the kernel otherwise takes the lowest MAC of the ports, which changes as
    /// containers come and go.
    pub mac: [u8; 6],
    /// Link group (the network's isolation group).
    pub group: u32,
    /// `vlan_filtering`.
    pub vlan_filtering: bool,
    /// IFF_PROMISC.
    pub promisc: bool,
    /// `mcast_snooping` (the kernel's default is on).
    pub multicast_snooping: bool,
}

/// Settings to change on an existing link, all in one request. `None` / `false` leaves a
/// setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkUpdate {
    /// Set IFF_UP.
    pub up: bool,
    /// Set or clear IFF_PROMISC.
    pub promisc: Option<bool>,
    /// `IFLA_GROUP`.
    pub group: Option<u32>,
    /// IPv6 address generation mode none: no link-local address, no SLAAC address.
    pub addr_gen_none: bool,
    /// IPv4 `arp_ignore` (8: answer ARP for no local address at all).
    pub arp_ignore: Option<i32>,
    /// IPv4 `arp_notify` = 1 (gratuitous ARP when the link comes up).
    pub arp_notify: bool,
    /// A bridge's `vlan_filtering`.
    pub vlan_filtering: Option<bool>,
    /// A bridge port's hairpin mode (`IFLA_BRPORT_MODE`).
    pub hairpin: Option<bool>,
    /// A bridge port's isolation (`IFLA_BRPORT_ISOLATED`).
    pub isolated: Option<bool>,
}

impl LinkUpdate {
    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == LinkUpdate::default()
    }
}

/// One VLAN of a bridge port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    /// VLAN ID, 1..=4094.
    pub vid: u16,
    /// Untagged frames entering the port belong to this VLAN (port VLAN ID).
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

impl PortVlan {
    fn flags(&self) -> BridgeVlanInfoFlags {
        let mut flags = BridgeVlanInfoFlags::empty();
        if self.pvid {
            flags |= BridgeVlanInfoFlags::Pvid;
        }
        if self.untagged {
            flags |= BridgeVlanInfoFlags::Untagged;
        }
        flags
    }
}

/// The `IFLA_BRIDGE_VLAN_INFO` entries for `vlans`, runs of consecutive IDs with the same flags
/// sent as one range (a trunk of 1..4094 is two entries, not 4094).
fn vlan_infos(vlans: &[PortVlan]) -> Vec<AfSpecBridge> {
    let mut sorted = vlans.to_vec();
    sorted.sort_by_key(|v| v.vid);
    sorted.dedup_by_key(|v| v.vid);
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut j = i;
        while j + 1 < sorted.len()
            && sorted[j + 1].vid == sorted[j].vid + 1
            && sorted[j + 1].flags() == first.flags()
            && !first.pvid
        {
            j += 1;
        }
        if j == i {
            out.push(AfSpecBridge::VlanInfo(BridgeVlanInfo { flags: first.flags(), vid: first.vid }));
        } else {
            let flags = first.flags();
            out.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: flags | BridgeVlanInfoFlags::RangeBegin,
                vid: first.vid,
            }));
            out.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: flags | BridgeVlanInfoFlags::RangeEnd,
                vid: sorted[j].vid,
            }));
        }
        i = j + 1;
    }
    out
}

fn af_spec(update: &LinkUpdate) -> Option<LinkAttribute> {
    let mut specs = Vec::new();
    if update.addr_gen_none {
        specs.push(AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)]));
    }
    if update.arp_ignore.is_some() || update.arp_notify {
        let mut conf = InetDevConf::default();
        conf.arp_ignore = update.arp_ignore.unwrap_or(0);
        conf.arp_notify = i32::from(update.arp_notify);
        specs.push(AfSpecUnspec::Inet(vec![AfSpecInet::DevConfRequest(conf)]));
    }
    (!specs.is_empty()).then_some(LinkAttribute::AfSpecUnspec(specs))
}

/// The RTM_NEWLINK (changelink) message for [`Netlink::update_link`].
pub(crate) fn update_message(index: u32, update: &LinkUpdate) -> RouteNetlinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    if update.up {
        msg.header.flags |= LinkFlags::Up;
        msg.header.change_mask |= LinkFlags::Up;
    }
    if let Some(on) = update.promisc {
        if on {
            msg.header.flags |= LinkFlags::Promisc;
        }
        msg.header.change_mask |= LinkFlags::Promisc;
    }
    if let Some(group) = update.group {
        msg.attributes.push(LinkAttribute::Group(group));
    }
    if let Some(spec) = af_spec(update) {
        msg.attributes.push(spec);
    }
    if let Some(on) = update.vlan_filtering {
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(on)])),
        ]));
    }
    let mut port = Vec::new();
    if let Some(on) = update.hairpin {
        port.push(InfoBridgePort::HairpinMode(on));
    }
    if let Some(on) = update.isolated {
        port.push(InfoBridgePort::Isolated(on));
    }
    if !port.is_empty() {
        msg.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::PortData(InfoPortData::BridgePort(port))]));
    }
    RouteNetlinkMessage::NewLink(msg)
}

impl Netlink {
    /// Create a bridge, up, in one request. Fails with EEXIST when the name is taken (whatever
    /// the existing link is); then nothing was created or changed.
    pub async fn create_bridge(&self, spec: &BridgeSpec<'_>) -> Result<(), NlError> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if spec.promisc {
            msg.header.flags |= LinkFlags::Promisc;
            msg.header.change_mask |= LinkFlags::Promisc;
        }
        msg.attributes.push(LinkAttribute::IfName(spec.name.to_string()));
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::Address(spec.mac.to_vec()));
        msg.attributes.push(LinkAttribute::Group(spec.group));
        let mut data = vec![InfoBridge::MulticastSnooping(spec.multicast_snooping)];
        if spec.vlan_filtering {
            data.push(InfoBridge::VlanFiltering(true));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(data)),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL).await
    }

    /// Apply `update` to link `index` in one request (RTM_NEWLINK without NLM_F_CREATE: the
    /// kernel's changelink). `vlan_filtering` requires the link to be a bridge; `hairpin` and
    /// `isolated` require it to be a bridge port.
    pub async fn update_link(&self, index: u32, update: &LinkUpdate) -> Result<(), NlError> {
        self.ack(update_message(index, update), 0).await
    }

    /// Add (or update the flags of) VLANs on bridge port `index`, like `bridge vlan add`.
    pub async fn add_port_vlans(&self, index: u32, vlans: &[PortVlan]) -> Result<(), NlError> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::AfSpecBridge(vlan_infos(vlans)));
        self.ack(RouteNetlinkMessage::SetLink(msg), 0).await
    }

    /// Remove VLANs from bridge port `index`, like `bridge vlan del`.
    pub async fn del_port_vlans(&self, index: u32, vids: &[u16]) -> Result<(), NlError> {
        let vlans: Vec<PortVlan> = vids.iter().map(|&vid| PortVlan { vid, pvid: false, untagged: false }).collect();
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::AfSpecBridge(vlan_infos(&vlans)));
        self.ack(RouteNetlinkMessage::DelLink(msg), 0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(vid: u16, pvid: bool, untagged: bool) -> PortVlan {
        PortVlan { vid, pvid, untagged }
    }

    fn infos(vlans: &[PortVlan]) -> Vec<(u16, u16)> {
        vlan_infos(vlans)
            .into_iter()
            .map(|a| match a {
                AfSpecBridge::VlanInfo(i) => (i.vid, i.flags.bits()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn consecutive_vlans_become_ranges() {
        let begin = BridgeVlanInfoFlags::RangeBegin.bits();
        let end = BridgeVlanInfoFlags::RangeEnd.bits();
        assert_eq!(infos(&[v(10, false, false)]), [(10, 0)]);
        assert_eq!(infos(&[v(12, false, false), v(10, false, false), v(11, false, false)]), [(10, begin), (12, end)]);
        assert_eq!(infos(&[v(1, false, false), v(4094, false, false)]), [(1, 0), (4094, 0)]);
        // a PVID entry is never part of a range (the kernel refuses that)
        let pvid = (BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged).bits();
        assert_eq!(
            infos(&[v(5, true, true), v(6, false, false), v(7, false, false)]),
            [(5, pvid), (6, begin), (7, end)]
        );
        assert_eq!(infos(&[v(5, false, false), v(5, false, false)]), [(5, 0)]);
    }

    #[test]
    fn updates_know_when_they_are_empty() {
        assert!(LinkUpdate::default().is_empty());
        assert!(!LinkUpdate { addr_gen_none: true, ..LinkUpdate::default() }.is_empty());
        assert!(af_spec(&LinkUpdate::default()).is_none());
        let spec = af_spec(&LinkUpdate { addr_gen_none: true, arp_ignore: Some(8), ..LinkUpdate::default() });
        match spec {
            Some(LinkAttribute::AfSpecUnspec(s)) => assert_eq!(s.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
