//! Masquerade through the `nft` crate: per-network table, per-attachment set elements keyed by
//! (network, container ID, ifname). Called from the main thread, so it acts on the node.

use crate::nftables;
use conf::{CniResult, IpConfig};
use ipnet::IpNet;
use nft::MasqEntry;
use std::net::IpAddr;

/// Masquerade the attachment's addresses when their traffic leaves their subnets, except to `excluded` (the
/// network's `nonMasqueradeCIDRs`, which this ADD makes the network's list).
pub fn add(network: &str, container_id: &str, ifname: &str, ips: &[IpConfig], excluded: &[IpNet]) -> CniResult<()> {
    let entries: Vec<MasqEntry> =
        ips.iter().map(|ip| MasqEntry { addr: ip.address.addr(), subnet: ip.address.trunc() }).collect();
    nft::masq_add(network, container_id, ifname, &entries, excluded).map_err(nftables::error)
}

/// Remove the attachment's masquerade state; nothing there is success.
pub fn del(network: &str, container_id: &str, ifname: &str) -> CniResult<()> {
    nft::masq_del(network, container_id, ifname).map_err(nftables::error)
}

/// The addresses masqueraded for the attachment.
pub fn list(network: &str, container_id: &str, ifname: &str) -> CniResult<Vec<IpAddr>> {
    nft::masq_list(network, container_id, ifname).map_err(nftables::error)
}

/// CHECK of the network's excluded destinations: they must be exactly `configured` (compared as the fewest
/// prefixes covering them, so `198.18.0.0/24` + `198.18.1.0/24` matches a set holding `198.18.0.0/23`).
pub fn check_excluded(network: &str, configured: &[IpNet]) -> CniResult<()> {
    let present = nft::masq_excluded(network).map_err(nftables::error)?;
    let mut want = IpNet::aggregate(&configured.to_vec());
    want.sort();
    let mut have = present;
    have.sort();
    if have != want {
        let show = |v: &[IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        return Err(crate::check::drift(format!(
            "nonMasqueradeCIDRs: the network's masquerade exclusions are [{}], the configuration says [{}]",
            show(&have),
            show(&want)
        )));
    }
    Ok(())
}

/// Remove the state of every attachment not in `valid`.
pub fn gc(network: &str, valid: &[conf::Attachment]) -> CniResult<()> {
    nft::masq_gc(network, &nftables::attachments(valid)).map_err(nftables::error)
}
