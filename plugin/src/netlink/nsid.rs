//! Namespace ids: how one namespace names another (`RTM_GETNSID`), to tell where a veth's peer
//! lives. A link whose peer is in another namespace carries that namespace's id as seen from its
//! own (`IFLA_LINK_NETNSID`); dumping such a link makes the kernel assign the id if it had none
//! (`rtnl_fill_link_netnsid` calls `peernet2id_alloc`), so read the link first, then ask here.

use super::{Netlink, NlError};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::RawFd;

impl Netlink {
    /// The id this connection's namespace gives the namespace open at `fd`, or `None` when it has
    /// assigned it none (so no link here can have its peer there).
    pub async fn nsid_of(&self, fd: RawFd) -> Result<Option<i32>, NlError> {
        let mut msg = NsidMessage::default();
        msg.attributes.push(NsidAttribute::Fd(fd as u32));
        let replies = self.get(RouteNetlinkMessage::GetNsId(msg)).await?;
        let id = replies.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewNsId(n) => n.attributes.into_iter().find_map(|a| match a {
                NsidAttribute::Id(id) => Some(id),
                _ => None,
            }),
            _ => None,
        });
        Ok(id.filter(|id| *id >= 0))
    }
}
