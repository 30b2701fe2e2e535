//! An in-memory [`Store`] for allocator tests.

use super::{Owner, Store};
use crate::error::Result;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Reservations in a map; `(id, None)` is a legacy (ID-only) reservation.
#[derive(Debug, Default)]
pub struct MemStore {
    /// Reserved address -> (container ID, interface name).
    pub reserved: BTreeMap<IpAddr, (String, Option<String>)>,
    /// `last_reserved_ip.<set>`.
    pub last: HashMap<usize, IpAddr>,
}

impl MemStore {
    /// Reserve `ip` for `(id, ifname)` behind the allocator's back.
    pub fn put(&mut self, ip: &str, id: &str, ifname: Option<&str>) {
        self.reserved.insert(ip.parse().expect("a test address"), (id.into(), ifname.map(Into::into)));
    }
}

impl Store for MemStore {
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool> {
        if self.reserved.contains_key(&ip) {
            return Ok(false);
        }
        self.reserved.insert(ip, (owner.id.to_string(), Some(owner.ifname.to_string())));
        Ok(true)
    }

    fn release(&mut self, ip: IpAddr, _: &Owner) -> Result<()> {
        self.reserved.remove(&ip);
        Ok(())
    }

    fn next_untaken(&mut self, from: IpAddr, to: IpAddr) -> Result<Option<IpAddr>> {
        Ok(crate::range::first_not_taken(self.reserved.range(from..=to).map(|(ip, _)| *ip), from, to))
    }

    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>> {
        Ok(self.last.get(&set).copied())
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<()> {
        self.last.insert(set, ip);
        Ok(())
    }

    fn held_by(&mut self, owner: &Owner) -> Result<Vec<IpAddr>> {
        let pick = |ifname: Option<&str>| -> Vec<IpAddr> {
            self.reserved
                .iter()
                .filter(|(_, (id, i))| id == owner.id && i.as_deref() == ifname)
                .map(|(ip, _)| *ip)
                .collect()
        };
        let ips = pick(Some(owner.ifname));
        Ok(if ips.is_empty() { pick(None) } else { ips })
    }
}
