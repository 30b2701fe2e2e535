//! Bridge MAC spoof check: `table bridge tether-<network>`; frames entering the bridge through a
//! container's port must carry the container's MAC (see `nft::Session::spoofchk_add`).

use super::{Firewall, Owner};
use crate::error::{Error, Result};
use crate::mac;

impl Firewall {
    /// Guard `port` (the node end) so only `mac` may enter the bridge through it.
    pub fn guard_port(&self, owner: Owner<'_>, port: &str, mac: [u8; 6]) -> Result<()> {
        self.with(|nft| nft.spoofchk_add(owner.network, owner.container_id, owner.ifname, port, mac))
    }

    /// Remove the attachment's guard; nothing there is success.
    pub(super) fn unguard_port(&self, owner: Owner<'_>) -> Result<()> {
        self.with(|nft| nft.spoofchk_del(owner.network, owner.container_id, owner.ifname))
    }

    /// CHECK: `port` is guarded for `mac`.
    pub fn check_port_guard(&self, owner: Owner<'_>, port: &str, mac: &[u8]) -> Result<()> {
        let guarded = self.with(|nft| nft.spoofchk_list(owner.network, owner.container_id, owner.ifname))?;
        if !guarded.iter().any(|(p, m)| p == port && m[..] == mac[..]) {
            return Err(Error::drift(format!("spoof check of {port} for MAC {} is missing", mac::format(mac))));
        }
        Ok(())
    }

    /// Remove the guards of every attachment not in `valid` (container ID, ifname).
    pub(super) fn gc_port_guards(&self, network: &str, valid: &[(String, String)]) -> Result<()> {
        self.with(|nft| nft.spoofchk_gc(network, valid))
    }
}
