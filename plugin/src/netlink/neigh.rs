//! Neighbour entries: seeding the ends of a fresh veth with each other's MAC (STALE), or a
//! permanent entry (ptp's gateway in the container, see `ptp::gateway`); one by one here, or in
//! a `Batch`.
//!
//! Why: right after ADD the first IPv6 neighbour solicitation between the two ends is
//! sometimes lost (the multicast group of a just-added address is joined from a workqueue, and
//! the link's carrier change restarts address configuration), and the retry comes only after
//! RetransTimer (1 s). Seen here: a ping from the node to a fresh container address failed on
//! the first try in 2 of 3 runs 0.3 s after ADD. A STALE entry with the known MAC lets the first
//! packet go out at once; the kernel then confirms it with a unicast probe as usual, so a
//! later MAC change is still learnt.

use super::{family, Netlink, NlError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::RouteNetlinkMessage;
use std::net::IpAddr;

/// The RTM_NEWNEIGH message for `ip` → `mac` on link `index` in `state` (send it with
/// NLM_F_CREATE | NLM_F_REPLACE).
pub(crate) fn new_neighbour(index: u32, ip: IpAddr, mac: &[u8], state: NeighbourState) -> RouteNetlinkMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family(&ip);
    msg.header.ifindex = index;
    msg.header.state = state;
    msg.attributes.push(NeighbourAttribute::Destination(match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }));
    msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    RouteNetlinkMessage::NewNeighbour(msg)
}

impl Netlink {
    /// Add (or replace) a STALE neighbour entry `ip` → `mac` on link `index`.
    pub async fn seed_neighbour(&self, index: u32, ip: IpAddr, mac: &[u8]) -> Result<(), NlError> {
        self.ack(new_neighbour(index, ip, mac, NeighbourState::Stale), NLM_F_CREATE | NLM_F_REPLACE).await
    }
}
