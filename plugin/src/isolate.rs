//! Isolation between tether networks through the `nft` crate: every node-side interface of a
//! network carries the network's link group, and the shared `inet tether` table drops what the
//! node would forward between two different groups (see `nft::isolate_add`). Called from the
//! main thread, so it acts on the node.

use crate::nftables;
use conf::{CniError, CniResult, ErrorCode};

/// Register the network (idempotent) and return the group its node-side interfaces get. Runs
/// before any of them exists, so a new interface is never forwarded to another network.
pub fn ensure(network: &str) -> CniResult<u32> {
    nft::isolate_add(network).map_err(nftables::error)
}

/// The network's group, without touching nftables.
pub fn group(network: &str) -> CniResult<u32> {
    nft::isolation_group(network).map_err(nftables::error)
}

/// CHECK: the network is registered.
pub fn check(network: &str) -> CniResult<()> {
    match nft::isolate_check(network).map_err(nftables::error)? {
        true => Ok(()),
        false => Err(CniError::new(
            ErrorCode::Drift,
            format!("isolation state of network {network} is missing (set `same` of table inet tether)"),
        )),
    }
}
