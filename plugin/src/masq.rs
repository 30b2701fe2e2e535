//! Masquerade through the `nft` crate: per-network table, per-attachment set elements keyed by
//! (network, container ID, ifname). Called from the main thread, so it acts on the node.

use crate::nftables;
use conf::{CniResult, IpConfig};
use nft::MasqEntry;
use std::net::IpAddr;

/// Masquerade the attachment's addresses when their traffic leaves their subnets.
pub fn add(network: &str, container_id: &str, ifname: &str, ips: &[IpConfig]) -> CniResult<()> {
    let entries: Vec<MasqEntry> =
        ips.iter().map(|ip| MasqEntry { addr: ip.address.addr(), subnet: ip.address.trunc() }).collect();
    nft::masq_add(network, container_id, ifname, &entries).map_err(nftables::error)
}

/// Remove the attachment's masquerade state; nothing there is success.
pub fn del(network: &str, container_id: &str, ifname: &str) -> CniResult<()> {
    nft::masq_del(network, container_id, ifname).map_err(nftables::error)
}

/// The addresses masqueraded for the attachment.
pub fn list(network: &str, container_id: &str, ifname: &str) -> CniResult<Vec<IpAddr>> {
    nft::masq_list(network, container_id, ifname).map_err(nftables::error)
}

/// Remove the state of every attachment not in `valid`.
pub fn gc(network: &str, valid: &[conf::Attachment]) -> CniResult<()> {
    nft::masq_gc(network, &nftables::attachments(valid)).map_err(nftables::error)
}
