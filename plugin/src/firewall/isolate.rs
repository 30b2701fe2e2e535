//! Isolation between networks that ask for it (`isolate: true`): every node-side interface of
//! an isolated network carries the network's link group, and the shared `inet tether` table
//! drops what the node would forward between two different groups (see `nft::Session::isolate_add`). A
//! network that is not isolated leaves its interfaces in group 0, which the rule never matches:
//! the node routes between such networks as the reference plugins do.

use super::Firewall;
use crate::error::{Error, Result};

impl Firewall {
    /// The link group of the network's node-side interfaces: its isolation group when it is
    /// isolated, else 0 (no group).
    pub fn isolation_group(&self, network: &str, isolated: bool) -> Result<u32> {
        match isolated {
            true => Ok(nft::isolation_group(network)?),
            false => Ok(0),
        }
    }

    /// Register an isolated network (idempotent; nothing for a network that is not isolated).
    /// Fails with code 7 when another isolated network holds the same group (its traffic would
    /// pass).
    pub fn ensure_isolation(&self, network: &str, isolated: bool) -> Result<()> {
        if isolated {
            self.with(|nft| nft.isolate_add(network)).map_err(|e| match e {
                Error::Firewall(refused) if refused.is_invalid_input() => Error::config(refused.to_string()),
                other => other,
            })?;
        }
        Ok(())
    }

    /// CHECK: an isolated network is registered.
    pub fn check_isolation(&self, network: &str, isolated: bool) -> Result<()> {
        if isolated && !self.with(|nft| nft.isolate_check(network))? {
            return Err(Error::drift(format!(
                "isolation state of network {network} is missing (set `same` of table inet tether)"
            )));
        }
        Ok(())
    }

    /// The network's isolation element goes (GC with no valid attachment left; a network with
    /// masquerade loses it with its last DEL already, see nft's `masq_del`).
    pub(super) fn forget_isolation(&self, network: &str) -> Result<()> {
        self.with(|nft| nft.isolate_del(network))
    }
}
