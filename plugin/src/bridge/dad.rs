//! `enabledad`: the container's IPv6 addresses go through duplicate address detection, and ADD
//! waits (bounded, as the reference does) until none is tentative, so the result lists usable
//! addresses. Without `enabledad` they are added with IFA_F_NODAD and nothing waits.

use crate::error::{Doing, Error, Result};
use crate::netlink::Netlink;
use std::time::{Duration, Instant};

/// The reference's `dadSettleTimeout`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// DAD takes about one RetransTimer (1 s) per probe; polling faster buys nothing.
const POLL: Duration = Duration::from_millis(50);

/// Wait until no IPv6 address of link `index` (in the container) is tentative.
///
/// # Errors
/// Code 100 when an address failed DAD (another host has it) or DAD did not finish in time.
pub async fn settle(nl: &Netlink, index: u32, name: &str) -> Result<()> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let addrs = nl.addr_infos(index).await.doing(format!("read addresses of {name}"))?;
        if let Some(failed) = addrs.iter().find(|a| a.dad_failed) {
            return Err(Error::kernel_state(
                format!("address {} of {name} failed duplicate address detection", failed.net),
                false,
            ));
        }
        if !addrs.iter().any(|a| a.tentative) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::kernel_state(
                format!("{name} still has tentative addresses after {SETTLE_TIMEOUT:?}"),
                false,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
