//! A bridge port (the node end of a container's veth, or a VLAN gateway's): its options and VLANs
//! right after creation, and waiting until it forwards.

use super::plan::PortVlans;
use crate::error::{Doing, Error, Result};
use crate::netlink::bridge::LinkUpdate;
use crate::netlink::link::{Link, PORT_DISABLED};
use crate::netlink::Netlink;
use std::time::{Duration, Instant};

/// Configure a new port: `options` (hairpin, isolation) plus no IPv6 address generation (a
/// port needs no address, and this keeps a link-local address of the node off the segment), in
/// one request; then its VLANs (the default VLAN removed before the others are added). Must run
/// before the container's end comes up: the port has no carrier, so no link-local address, until
/// then.
pub async fn configure(nl: &Netlink, port: &Link, options: &LinkUpdate, vlans: &PortVlans) -> Result<()> {
    let update = LinkUpdate { addr_gen_none: port.addr_gen_mode.is_some() && !port.addr_gen_none(), ..options.clone() };
    let settings = async {
        if update.is_empty() {
            return Ok(());
        }
        nl.update_link(port.index, &update).await.doing(format!("configure bridge port {}", port.name))
    };
    let vlan_changes = async {
        if !vlans.remove.is_empty() {
            nl.del_port_vlans(port.index, &vlans.remove)
                .await
                .doing(format!("remove VLAN(s) {:?} from {}", vlans.remove, port.name))?;
        }
        if !vlans.add.is_empty() {
            let vids: Vec<u16> = vlans.add.iter().map(|v| v.vid).collect();
            nl.add_port_vlans(port.index, &vlans.add).await.doing(format!("add VLAN(s) {vids:?} to {}", port.name))?;
        }
        Ok::<(), Error>(())
    };
    let (s, v) = tokio::join!(settings, vlan_changes);
    s.and(v)
}

/// How long a port may stay disabled after its container's end came up. Linux enables it from
/// the link-watch work queue once the veth has carrier; that normally takes microseconds, but the
/// queue waits for the RTNL lock, which concurrent ADDs hold.
const ENABLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Wait until the port leaves the disabled state (forwarding at once with STP off, the default;
/// listening with STP on), so the container's first packets are not dropped (plugins#463). Polls
/// the port state with a short backoff: 0.5 ms, doubling, up to 100 ms between reads.
///
/// # Errors
/// Code 11 when it is still disabled after [`ENABLE_TIMEOUT`] (is the bridge down?).
pub async fn wait_enabled(nl: &Netlink, index: u32, name: &str) -> Result<()> {
    let deadline = Instant::now() + ENABLE_TIMEOUT;
    let mut pause = Duration::from_micros(500);
    let mut polls = 0u32;
    loop {
        let link = nl
            .link_by_index(index)
            .await
            .doing(format!("read {name}"))?
            .ok_or_else(|| Error::kernel_state(format!("bridge port {name} vanished"), false))?;
        match link.port_state {
            Some(PORT_DISABLED) => {}
            Some(_) => {
                if polls > 0 {
                    log::debug!("bridge port {name} enabled after {polls} poll(s)");
                }
                return Ok(());
            }
            None => return Err(Error::kernel_state(format!("{name} is no longer a bridge port"), false)),
        }
        if Instant::now() >= deadline {
            return Err(Error::Busy(format!("bridge port {name} is still disabled after {ENABLE_TIMEOUT:?}"))
                .hint("is the bridge up?"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
        polls += 1;
    }
}
