//! Bridge MAC spoof check through the `nft` crate: frames from a container's port must carry the
//! container's MAC. State is keyed by (network, container ID, ifname), so DEL and GC find it
//! without the port. Called from the main thread, so it acts on the node.

use crate::nftables;
use conf::CniResult;

/// Guard `host_port` (the node end) so only `mac` may enter the bridge through it.
pub fn add(network: &str, container_id: &str, ifname: &str, host_port: &str, mac: [u8; 6]) -> CniResult<()> {
    nft::spoofchk_add(network, container_id, ifname, host_port, mac).map_err(nftables::error)
}

/// Remove the attachment's state; nothing there is success.
pub fn del(network: &str, container_id: &str, ifname: &str) -> CniResult<()> {
    nft::spoofchk_del(network, container_id, ifname).map_err(nftables::error)
}

/// The (port, MAC) pairs guarded for the attachment.
pub fn list(network: &str, container_id: &str, ifname: &str) -> CniResult<Vec<(String, [u8; 6])>> {
    nft::spoofchk_list(network, container_id, ifname).map_err(nftables::error)
}

/// Remove the state of every attachment not in `valid`.
pub fn gc(network: &str, valid: &[conf::Attachment]) -> CniResult<()> {
    nft::spoofchk_gc(network, &nftables::attachments(valid)).map_err(nftables::error)
}
