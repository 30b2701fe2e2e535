//! Allocation: one address from each range set, host-local's way, over any [`Store`]. Pure logic.
//!
//! Per set: the first requested address it contains (removed from the request list), else the
//! address the attachment already holds in it (a repeated ADD gets the same answer), else the
//! round-robin search from `last_reserved_ip.<set>` (`allocator.go`). Gateways are never handed
//! out. Requested addresses nobody took, and any other failure, release what this call reserved
//! (and only that) before the error is returned.

use crate::error::{Error, Result};
use crate::range::{next, to_u128, RangeSet};
use crate::store::{Owner, Store};
use ipnet::IpNet;
use std::net::IpAddr;

/// One address handed out (or found already held) for one range set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Index of the range set.
    pub set: usize,
    /// The address with its subnet's prefix length.
    pub address: IpNet,
    /// The gateway of its range.
    pub gateway: IpAddr,
    /// True when this call reserved it; false when the attachment already held it.
    pub fresh: bool,
}

fn is_gateway(set: &RangeSet, ip: IpAddr) -> bool {
    set.ranges.iter().any(|r| r.gateway == ip)
}

/// Allocate for `owner`: one lease per set, in set order.
///
/// `held` are the addresses the attachment already holds (from [`Store::held_by`]).
///
/// # Errors
/// Code 104 when a set is exhausted, a requested address is taken, is a gateway or lies in no
/// set, or when a requested address conflicts with one already held; store errors pass through.
/// On error nothing this call reserved stays reserved.
pub fn allocate(
    store: &mut dyn Store,
    sets: &[RangeSet],
    owner: &Owner,
    requested: &[IpAddr],
    held: &[IpAddr],
) -> Result<Vec<Lease>> {
    let mut leases = Vec::with_capacity(sets.len());
    match allocate_into(store, sets, owner, requested, held, &mut leases) {
        Ok(()) => Ok(leases),
        Err(e) => {
            for lease in leases.iter().rev().filter(|l| l.fresh) {
                if let Err(undo) = store.release(lease.address.addr(), owner) {
                    log::warn!("releasing {} after a failed ADD: {undo}", lease.address.addr());
                }
            }
            Err(e)
        }
    }
}

fn allocate_into(
    store: &mut dyn Store,
    sets: &[RangeSet],
    owner: &Owner,
    requested: &[IpAddr],
    held: &[IpAddr],
    leases: &mut Vec<Lease>,
) -> Result<()> {
    let mut wanted = requested.to_vec();
    for (i, set) in sets.iter().enumerate() {
        let req = wanted.iter().position(|ip| set.contains(*ip)).map(|p| wanted.remove(p));
        let have = held.iter().copied().find(|ip| set.contains(*ip));
        let (ip, fresh) = match (have, req) {
            (Some(h), Some(r)) if h != r => {
                return Err(Error::Refused(format!(
                    "range set {i} ({set}): {r} was requested but container {} interface {} already holds {h}",
                    owner.id, owner.ifname
                )))
            }
            (Some(h), _) => (h, false),
            (None, Some(r)) => (reserve_requested(store, i, set, r, owner)?, true),
            (None, None) => (reserve_next(store, i, set, owner)?, true),
        };
        let range = set.range_for(ip).ok_or_else(|| Error::Refused(format!("{ip} is not in range set {i} ({set})")))?;
        leases.push(Lease { set: i, address: range.with_prefix(ip), gateway: range.gateway, fresh });
        if fresh {
            store.set_last_reserved(i, ip)?;
        }
    }
    if !wanted.is_empty() {
        let list: Vec<String> = wanted.iter().map(|ip| ip.to_string()).collect();
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        return Err(Error::Refused(format!(
            "failed to allocate all requested IPs: {} not in any range set ({})",
            list.join(", "),
            sets.join("; ")
        )));
    }
    Ok(())
}

fn reserve_requested(store: &mut dyn Store, i: usize, set: &RangeSet, ip: IpAddr, owner: &Owner) -> Result<IpAddr> {
    if is_gateway(set, ip) {
        return Err(Error::Refused(format!("requested IP {ip} is the gateway of range set {i} ({set})")));
    }
    if !store.reserve(ip, owner)? {
        return Err(Error::Refused(format!(
            "requested IP address {ip} is not available in range set {i} ({set}): it is reserved by another container"
        )));
    }
    Ok(ip)
}

fn reserve_next(store: &mut dyn Store, i: usize, set: &RangeSet, owner: &Owner) -> Result<IpAddr> {
    let last = store.last_reserved(i)?;
    for seg in set.round_robin(last) {
        let mut cur = seg.from;
        while let Some(candidate) = store.next_untaken(cur, seg.to)? {
            if !is_gateway(set, candidate) && store.reserve(candidate, owner)? {
                return Ok(candidate);
            }
            match next(candidate) {
                Some(n) if to_u128(candidate) < to_u128(seg.to) => cur = n,
                _ => break,
            }
        }
    }
    Err(Error::Exhausted { set: i, ranges: set.to_string() })
}

/// Whether `set` still has an address that an ADD could take (STATUS), given the store's
/// `next_untaken` (a read-only view will do).
///
/// # Errors
/// Errors of `next_untaken` pass through.
pub fn has_free(
    set: &RangeSet,
    mut next_untaken: impl FnMut(IpAddr, IpAddr) -> Result<Option<IpAddr>>,
) -> Result<bool> {
    for range in &set.ranges {
        let mut cur = range.start;
        while let Some(candidate) = next_untaken(cur, range.end)? {
            if !is_gateway(set, candidate) {
                return Ok(true);
            }
            match next(candidate) {
                Some(n) if to_u128(candidate) < to_u128(range.end) => cur = n,
                _ => break,
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
#[path = "allocator_tests.rs"]
mod tests;
