//! Masquerade through the `nft` crate: per-network table, per-attachment set elements keyed by
//! (network, container ID, ifname). Called from the main thread, so it acts on the node.

use conf::{CniError, CniResult, ErrorCode, IpConfig};
use nft::{MasqEntry, NftError};
use std::net::IpAddr;

fn nft_error(e: NftError) -> CniError {
    CniError::new(ErrorCode::Nftables, e.to_string())
}

/// Masquerade the attachment's addresses when their traffic leaves their subnets.
pub fn add(network: &str, container_id: &str, ifname: &str, ips: &[IpConfig]) -> CniResult<()> {
    let entries: Vec<MasqEntry> =
        ips.iter().map(|ip| MasqEntry { addr: ip.address.addr(), subnet: ip.address.trunc() }).collect();
    nft::masq_add(network, container_id, ifname, &entries).map_err(nft_error)
}

/// Remove the attachment's masquerade state; nothing there is success.
pub fn del(network: &str, container_id: &str, ifname: &str) -> CniResult<()> {
    nft::masq_del(network, container_id, ifname).map_err(nft_error)
}

/// The addresses masqueraded for the attachment.
pub fn list(network: &str, container_id: &str, ifname: &str) -> CniResult<Vec<IpAddr>> {
    nft::masq_list(network, container_id, ifname).map_err(nft_error)
}

/// Remove the state of every attachment not in `valid`.
pub fn gc(network: &str, valid: &[conf::Attachment]) -> CniResult<()> {
    let valid: Vec<(String, String)> = valid.iter().map(|a| (a.container_id.clone(), a.ifname.clone())).collect();
    nft::masq_gc(network, &valid).map_err(nft_error)
}
