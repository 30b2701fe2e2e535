//! DEL and GC: best-effort and idempotent. Every step runs even when an earlier one failed; what
//! is already gone counts as done; the errors are reported together at the end.
//!
//! DEL finds everything from stable keys, never from the live interface: the node end by its
//! deterministic name, masquerade and spoof-check state by (network, container ID, ifname), the
//! reservation by (container ID, ifname). The bridge, its gateway addresses and the network's
//! isolation element are shared and stay. So it completes without the netns, without `prevResult`, and after
//! an ADD that failed half-way.

use crate::config::{self, Mode};
use crate::ipam::Ipam;
use crate::netlink::Netlink;
use crate::netns::Netns;
use crate::{masq, runtime, spoofchk, veth};
use conf::{CniError, CniResult, Command, ErrorCode, Request};

/// DEL for every mode.
///
/// The links and the nftables state are removed concurrently: both deleting a veth and
/// committing an nftables deletion wait in the kernel for an RCU grace period (~10-15 ms each
/// here; `strace` shows the time in the netlink ack and in `close` of the nfnetlink socket), and
/// the two waits overlap instead of adding up. The helper thread is spawned by the main thread
/// while it is in the node's namespace, so it acts on the node. The reservation is released
/// last: until the node end and its `/32` route are gone, handing the address to another
/// container would make that container's ADD collide with the old route.
pub fn del(request: &Request) -> CniResult<()> {
    let (links, mut errors) = std::thread::scope(|scope| {
        let nft_state = scope.spawn(|| remove_nft_state(request));
        let links = remove_links(request);
        let errors =
            nft_state.join().unwrap_or_else(|_| vec![CniError::new(ErrorCode::Internal, "DEL helper thread died")]);
        (links, errors)
    });
    if let Err(e) = links {
        errors.insert(0, e);
    }
    if let Err(e) = Ipam::of(request).run(request, Command::Del) {
        errors.push(e);
    }
    runtime::combine(errors)
}

/// Masquerade and spoof-check state, by key; every step runs.
fn remove_nft_state(request: &Request) -> Vec<CniError> {
    let inv = &request.invocation;
    let mut errors = Vec::new();
    if let Err(e) = masq::del(&request.config.name, &inv.container_id, &inv.ifname) {
        errors.push(e.context("remove masquerade state"));
    }
    if config::mode_of(&request.config) == Mode::Bridge {
        if let Err(e) = spoofchk::del(&request.config.name, &inv.container_id, &inv.ifname) {
            errors.push(e.context("remove spoof-check state"));
        }
    }
    errors
}

/// Delete the pair from the node side; if the node end is unknown (an ADD by another naming, or
/// nothing at all), remove a veth of the requested name in the container if the netns is there.
fn remove_links(request: &Request) -> CniResult<()> {
    let inv = &request.invocation;
    let host_veth = veth::host_veth_name(&request.config.name, &inv.container_id, &inv.ifname);
    runtime::build()?.block_on(async {
        let host = Netlink::connect()?;
        match host.delete_link(&host_veth).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into_cni(format!("delete {host_veth}"))),
        }
        let Some(path) = inv.netns.as_deref() else { return Ok(()) };
        // A namespace that is gone, or a path that is no namespace any more: nothing left inside.
        let Ok(netns) = Netns::open(path) else { return Ok(()) };
        let ctr = {
            let _inside = netns.enter()?;
            Netlink::connect()?
        };
        match ctr.link_by_name(&inv.ifname).await {
            Ok(Some(link)) if link.kind.as_deref() == Some("veth") => match ctr.delete_link(&inv.ifname).await {
                Err(e) if !e.is_not_found() => Err(e.into_cni(format!("delete {} in the container", inv.ifname))),
                _ => Ok(()),
            },
            Ok(_) => Ok(()),
            Err(e) => Err(e.into_cni(format!("read {} in the container", inv.ifname))),
        }
    })
}

/// GC: release what IPAM holds and the masquerade and spoof-check state of every attachment not
/// listed as valid. All run; errors are reported together.
pub fn gc(request: &Request) -> CniResult<()> {
    let mut errors: Vec<CniError> = Vec::new();
    if let Err(e) = masq::gc(&request.config.name, &request.config.valid_attachments) {
        errors.push(e.context("garbage-collect masquerade state"));
    }
    if config::mode_of(&request.config) == Mode::Bridge {
        if let Err(e) = spoofchk::gc(&request.config.name, &request.config.valid_attachments) {
            errors.push(e.context("garbage-collect spoof-check state"));
        }
    }
    if let Err(e) = Ipam::of(request).run(request, Command::Gc) {
        errors.push(e);
    }
    runtime::combine(errors)
}
