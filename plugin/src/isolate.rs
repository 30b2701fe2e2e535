//! Isolation between networks that ask for it (`isolate: true`), through the `nft` crate: every
//! node-side interface of an isolated network carries the network's link group, and the shared
//! `inet tether` table drops what the node would forward between two different groups (see
//! `nft::isolate_add`). A network that is not isolated leaves its interfaces in group 0, which the
//! rule never matches: the node routes between such networks as the reference plugins do. Called
//! from the main thread, so it acts on the node.

use crate::config::PluginConf;
use crate::nftables;
use conf::{CniError, CniResult, ErrorCode};

/// The link group of the network's node-side interfaces: its isolation group when it is
/// isolated, else 0 (no group).
pub fn group(network: &str, conf: &PluginConf) -> CniResult<u32> {
    if conf.isolate {
        nft::isolation_group(network).map_err(nftables::error)
    } else {
        Ok(0)
    }
}

/// Register an isolated network (idempotent; nothing for a network that is not isolated).
/// Fails when another isolated network holds the same group (its traffic would pass).
pub fn ensure(network: &str, conf: &PluginConf) -> CniResult<()> {
    if conf.isolate {
        nft::isolate_add(network).map_err(|e| match e.is_invalid_input() {
            true => CniError::new(ErrorCode::InvalidConfig, e.to_string()),
            false => nftables::error(e),
        })?;
    }
    Ok(())
}

/// GC: with no valid attachment left, the network's isolation element goes (a network with
/// masquerade loses it with its last DEL already, see nft's `masq_del`).
pub fn gc(network: &str, valid: &[conf::Attachment]) -> CniResult<()> {
    if valid.is_empty() {
        nft::isolate_del(network).map_err(nftables::error)?;
    }
    Ok(())
}

/// CHECK: an isolated network is registered.
pub fn check(network: &str, conf: &PluginConf) -> CniResult<()> {
    if !conf.isolate {
        return Ok(());
    }
    match nft::isolate_check(network).map_err(nftables::error)? {
        true => Ok(()),
        false => Err(CniError::new(
            ErrorCode::Drift,
            format!("isolation state of network {network} is missing (set `same` of table inet tether)"),
        )),
    }
}
