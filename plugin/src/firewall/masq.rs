//! Masquerade: `table inet tether-<network>`, the attachment's addresses as set elements, the
//! network's excluded destinations as interval sets (see `nft::Session::masq_add`).

use super::{Firewall, Owner};
use crate::error::{Error, Result};
use conf::IpConfig;
use ipnet::IpNet;
use nft::MasqEntry;

impl Firewall {
    /// Masquerade the attachment's addresses when their traffic leaves their subnets, except to
    /// `excluded` (the network's `nonMasqueradeCIDRs`, which this ADD makes the network's list).
    pub fn masquerade(&self, owner: Owner<'_>, ips: &[IpConfig], excluded: &[IpNet]) -> Result<()> {
        let entries: Vec<MasqEntry> =
            ips.iter().map(|ip| MasqEntry { addr: ip.address.addr(), subnet: ip.address.trunc() }).collect();
        self.with(|nft| nft.masq_add(owner.network, owner.container_id, owner.ifname, &entries, excluded))
    }

    /// Remove the attachment's masquerade state; nothing there is success.
    pub(super) fn unmasquerade(&self, owner: Owner<'_>) -> Result<()> {
        self.with(|nft| nft.masq_del(owner.network, owner.container_id, owner.ifname))
    }

    /// CHECK: each of `ips` is masqueraded for the attachment, and the network's exclusions are
    /// exactly `configured` (compared as the fewest prefixes covering them, so `198.18.0.0/24` +
    /// `198.18.1.0/24` matches a set holding `198.18.0.0/23`).
    pub fn check_masquerade(&self, owner: Owner<'_>, ips: &[IpNet], configured: &[IpNet]) -> Result<()> {
        let masqueraded = self.with(|nft| nft.masq_list(owner.network, owner.container_id, owner.ifname))?;
        if let Some(ip) = ips.iter().find(|ip| !masqueraded.contains(&ip.addr())) {
            return Err(Error::drift(format!("masquerade state for {} is missing", ip.addr())));
        }
        let mut have = self.with(|nft| nft.masq_excluded(owner.network))?;
        have.sort();
        let mut want = IpNet::aggregate(&configured.to_vec());
        want.sort();
        if have != want {
            let show = |v: &[IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Err(Error::drift(format!(
                "nonMasqueradeCIDRs: the network's masquerade exclusions are [{}], the configuration says [{}]",
                show(&have),
                show(&want)
            )));
        }
        Ok(())
    }

    /// Remove the masquerade state of every attachment not in `valid` (container ID, ifname).
    pub(super) fn gc_masquerade(&self, network: &str, valid: &[(String, String)]) -> Result<()> {
        self.with(|nft| nft.masq_gc(network, valid))
    }
}
