//! The node's copy of each ptp gateway address: held once, on `lo`, while an attachment uses it.
//!
//! The reference puts the gateway on every node end of the network. Each such copy adds one more
//! alias to the gateway's local route, and the kernel walks all of them whenever another is added
//! (`fib_table_insert` looks through a prefix's aliases for a duplicate): `perf record` of ptp ADDs
//! on a node with 1,000 attachments put 0.18 ms of each ADD there, and
//! `bench/probes/shared-gateway.sh` measured 2.23-2.36 ms per ADD with the 1,000 copies against
//! 1.91-2.07 ms once they were removed (1.80-1.94 ms on an empty node). Held once, the gateway
//! costs the same at any number of attachments. What the node ends lose by it, ADD gives back
//! (`super::apply`): each host route names the gateway as its source, and the container gets a
//! permanent neighbour entry for the gateway with the node end's MAC, since neither IPv6 neighbour
//! discovery nor ARP under `arp_ignore` 1 answers for an address of another link.
//!
//! Who uses which gateway is recorded in [`Users`]; whoever removes a gateway's last user removes
//! the gateway, under the record's lock, so a concurrent ADD never loses it.

use super::plan::host_prefix;
use super::users::Users;
pub use super::users::ROOT;
use crate::error::{Error, Result};
use crate::netlink::Netlink;
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

/// `lo`'s index in every network namespace: the kernel registers it first, with the fixed
/// `LOOPBACK_IFINDEX` (1).
pub const LOOPBACK: u32 = 1;

/// IFA_PROTO of the gateways tether holds (`ip addr` shows `proto 116`): the last user removes a
/// gateway only if it is tether's, never one the operator had put on `lo` (which an ADD then just
/// uses; the kernel reports no IFA_PROTO for an address added without one). Kernels before 6.1
/// neither keep nor report it; there every unused gateway is removed.
pub const PROTOCOL: u8 = 116;

/// Lock the node's record of gateway users.
///
/// # Errors
/// Code 5 when the record cannot be made or locked.
pub fn lock(root: &Path) -> Result<Users> {
    Users::lock(root).map_err(|cause| record_error("lock", root, cause))
}

/// Record `user` (a node end) for each of `gateways`, under the lock.
///
/// # Errors
/// Code 5 when a record cannot be written.
pub fn record(users: &Users, root: &Path, gateways: &[IpAddr], user: &str) -> Result<()> {
    for gateway in gateways {
        users
            .add(*gateway, user)
            .map_err(|cause| record_error(&format!("record {user} as a user of {gateway} in"), root, cause))?;
    }
    Ok(())
}

/// `user`'s node end is gone (DEL, a failed ADD): forget it, and remove every gateway nobody
/// uses any more.
///
/// # Errors
/// Code 5 when the record cannot be changed; 100 when a gateway cannot be removed from `lo`.
pub async fn release(node: &Netlink, root: &Path, user: &str) -> Result<()> {
    let users = lock(root)?;
    users.remove(user).map_err(|cause| record_error(&format!("forget {user} in"), root, cause))?;
    remove_unused(node, root, &users).await
}

/// GC: forget every user whose node end is gone, then remove the unused gateways. The links are
/// read under the lock: an ADD records its user only once its node end exists, and under the same
/// lock, so no user of a live attachment can be missing from what is read.
///
/// # Errors
/// Code 5 when the record cannot be read or changed; 100 when the links cannot be listed or a
/// gateway cannot be removed.
pub async fn sweep(node: &Netlink, root: &Path) -> Result<()> {
    let users = lock(root)?;
    let links = node.all_links().await.map_err(|e| Error::kernel("list the node's links", e))?;
    let names: HashSet<String> = links.into_iter().map(|l| l.name).collect();
    let all = users.all().map_err(|cause| record_error("read", root, cause))?;
    for (gateway, user) in all.into_iter().filter(|(_, user)| !names.contains(user)) {
        // A dump can miss a link while other links come and go (older kernels resume it by
        // position): only a lookup says a node end is gone.
        if node.link_by_name(&user).await.map_err(|e| Error::kernel(format!("read {user}"), e))?.is_some() {
            continue;
        }
        log::info!("GC: {user} is gone; it no longer uses gateway {gateway}");
        users.remove_from(gateway, &user).map_err(|cause| record_error(&format!("forget {user} in"), root, cause))?;
    }
    remove_unused(node, root, &users).await
}

/// Remove each gateway without users from `lo` (if tether's: [`PROTOCOL`]), then its record (that
/// order: a crash in between leaves the record, and the next release or GC finishes the job).
async fn remove_unused(node: &Netlink, root: &Path, users: &Users) -> Result<()> {
    let unused = users.unused().map_err(|cause| record_error("read", root, cause))?;
    if unused.is_empty() {
        return Ok(());
    }
    let on_lo = node.addr_infos(LOOPBACK).await.map_err(|e| Error::kernel("read the addresses of lo", e))?;
    let protocols_known = crate::kernel::at_least(6, 1);
    for gateway in unused {
        let held = on_lo.iter().find(|a| a.net == host_prefix(gateway));
        match held.map(|a| a.protocol) {
            None => {}
            Some(protocol) if protocols_known && protocol != Some(PROTOCOL) => {
                log::info!("gateway {gateway} on lo was not added by tether ({protocol:?}): left there");
            }
            Some(_) => match node.delete_addr(LOOPBACK, host_prefix(gateway)).await {
                Err(e) if !e.is_not_found() => {
                    return Err(Error::kernel(format!("remove gateway {gateway} from lo"), e))
                }
                _ => log::info!("gateway {gateway} has no users left on the node: removed from lo"),
            },
        }
        users.forget(gateway).map_err(|cause| record_error(&format!("forget gateway {gateway} in"), root, cause))?;
    }
    Ok(())
}

fn record_error(doing: &str, root: &Path, cause: std::io::Error) -> Error {
    Error::File {
        doing: format!("{doing} the node's record of gateway users"),
        path: root.display().to_string(),
        cause,
    }
}
