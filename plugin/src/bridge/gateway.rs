//! Gateway addresses on the bridge (or the VLAN gateway interface), with the reference's
//! `ensureAddr` rules: an address already there is fine (a concurrent ADD may have just added it);
//! another IPv4 address, or an overlapping IPv6 one, is a conflict, replaced only with
//! `forceAddress`. Several non-overlapping IPv6 addresses may coexist (link-local included).

use crate::error::{Doing, Error, Result};
use crate::netlink::addr::AddrFlags;
use crate::netlink::link::Link;
use crate::netlink::Netlink;
use ipnet::IpNet;

/// The addresses of `have` that conflict with `want`.
pub fn conflicts(have: &[IpNet], want: &IpNet) -> Vec<IpNet> {
    have.iter()
        .filter(|a| *a != want && a.addr().is_ipv4() == want.addr().is_ipv4())
        .filter(|a| a.addr().is_ipv4() || a.contains(&want.addr()) || want.contains(&a.addr()))
        .copied()
        .collect()
}

/// Put each of `wanted` on `link` unless it is there.
///
/// # Errors
/// Code 7 naming the link and the address when a conflicting address is present and `force` is
/// off; 100 when a request fails.
pub async fn ensure_addrs(nl: &Netlink, link: &Link, wanted: &[IpNet], force: bool) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let mut have = nl.addrs_of(link.index).await.doing(format!("read addresses of {}", link.name))?;
    for want in wanted {
        if have.contains(want) {
            continue;
        }
        for old in conflicts(&have, want) {
            if !force {
                return Err(Error::config(format!("{:?} already has an IP address different from {want}", link.name))
                    .hint(format!("it has {old}; set forceAddress to replace it")));
            }
            log::info!("forceAddress: replacing {old} on {} by {want}", link.name);
            match nl.delete_addr(link.index, old).await {
                Err(e) if !e.is_not_found() => {
                    return Err(Error::kernel(format!("remove {old} from {}", link.name), e))
                }
                _ => have.retain(|a| *a != old),
            }
        }
        // The prefix route comes with the address: the node reaches the segment through it.
        match nl.add_addr(link.index, *want, AddrFlags::default()).await {
            Err(e) if !e.is_exists() => return Err(Error::kernel(format!("add gateway {want} to {}", link.name), e)),
            _ => have.push(*want),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn conflicts_follow_the_reference() {
        let have = nets(&["198.18.1.1/24", "fe80::1/64", "fd7e:7e7e:1::1/64"]);
        // same address: no conflict
        assert!(conflicts(&have, &nets(&["198.18.1.1/24"])[0]).is_empty());
        // any other IPv4 address conflicts, overlapping or not
        assert_eq!(conflicts(&have, &nets(&["198.18.9.1/24"])[0]), nets(&["198.18.1.1/24"]));
        // IPv6: only overlapping ones
        assert!(conflicts(&have, &nets(&["fd7e:7e7e:2::1/64"])[0]).is_empty());
        assert_eq!(conflicts(&have, &nets(&["fd7e:7e7e:1::9/64"])[0]), nets(&["fd7e:7e7e:1::1/64"]));
        assert_eq!(conflicts(&have, &nets(&["fd7e:7e7e::1/32"])[0]), nets(&["fd7e:7e7e:1::1/64"]));
    }
}
